"""GET/POST /api/users, GET/PUT/DELETE /api/users/<id> through the gateway (issue 5)."""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from stockmanager.db import Database
from tests.support.stack import ApiClient, Stack, unique
from tests.users.conftest import (
    PASSWORD,
    Account,
    assert_error,
    create_account,
    signed_out,
    wait_for,
)

LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

AdminPair = tuple[Account, ApiClient]


def test_user_endpoints_need_admin_or_root(
    stack: Stack, seller: AdminPair, admin: AdminPair, root_client: ApiClient
) -> None:
    target = create_account(root_client)
    _, seller_client = seller
    calls = [
        ("GET", "/api/users", None),
        (
            "POST",
            "/api/users",
            {
                "username": unique(),
                "email": "x@example.com",
                "password": PASSWORD,
                "role": "vendedor",
            },
        ),
        ("GET", f"/api/users/{target.id}", None),
        ("PUT", f"/api/users/{target.id}", {"email": "changed@example.com"}),
        ("DELETE", f"/api/users/{target.id}", None),
    ]
    with stack.client() as anonymous:
        for method, path, body in calls:
            assert_error(anonymous.request(method, path, json=body), 401, "No autenticado")
            assert_error(seller_client.request(method, path, json=body), 403, "Permiso denegado")
    # Nothing above changed the target.
    got = admin[1].get(f"/api/users/{target.id}").json()
    assert got["email"] == target.email and got["status"] == 1


def test_get_user_returns_the_user_object(admin: AdminPair, root_client: ApiClient) -> None:
    account = create_account(root_client, "ADMIN")  # role matched case-insensitively, stored lower
    _, client = admin
    response = client.get(f"/api/users/{account.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "username", "email", "role", "status", "created_at"}
    assert body["id"] == account.id
    assert body["username"] == account.username
    assert body["email"] == account.email
    assert body["role"] == "admin"
    assert body["status"] == 1
    assert LOCAL_TIME.match(body["created_at"])
    assert_error(client.get("/api/users/999999999"), 404, "Usuario no encontrado")


def test_list_envelope_order_search_status_and_clamps(
    admin: AdminPair, root_client: ApiClient
) -> None:
    token = unique("ls")
    accounts = [create_account(root_client, prefix=f"{token}_") for _ in range(3)]
    _, client = admin

    body = client.get("/api/users", params={"search": token.upper()}).json()
    assert body["total"] == 3 and body["page"] == 1 and body["pages"] == 1
    assert body["limit"] == 10
    # Newest first (created_at DESC, id DESC).
    assert [u["id"] for u in body["data"]] == [a.id for a in reversed(accounts)]
    first = body["data"][0]
    assert first == {
        "id": accounts[-1].id,
        "username": accounts[-1].username,
        "email": accounts[-1].email,
        "role": "vendedor",
        "status": 1,
        "created_at": first["created_at"],
    }
    # Search matches e-mails too.
    by_email = client.get("/api/users", params={"search": accounts[0].email.upper()}).json()
    assert [u["id"] for u in by_email["data"]] == [accounts[0].id]

    # `_` and `%` in the search are literal characters, not wildcards.
    assert client.get("/api/users", params={"search": f"{token}%"}).json()["total"] == 0
    wildcard = token[:-1] + "_"
    assert client.get("/api/users", params={"search": wildcard}).json()["total"] == 0
    assert client.get("/api/users", params={"search": f"{token}_"}).json()["total"] == 3

    # Pagination: limit clamped to [1, 100], bad numbers fall back to defaults.
    page2 = client.get("/api/users", params={"search": token, "limit": 2, "page": 2}).json()
    assert page2["pages"] == 2 and page2["page"] == 2 and page2["limit"] == 2
    assert [u["id"] for u in page2["data"]] == [accounts[0].id]
    assert client.get("/api/users", params={"search": token, "limit": 0}).json()["limit"] == 1
    assert client.get("/api/users", params={"limit": 1000}).json()["limit"] == 100
    odd = client.get("/api/users", params={"search": token, "page": "x", "limit": "y"}).json()
    assert (odd["page"], odd["limit"], odd["total"]) == (1, 10, 3)
    beyond = client.get("/api/users", params={"search": token, "page": 9}).json()
    assert beyond["data"] == [] and beyond["total"] == 3 and beyond["pages"] == 1

    # The `status` filter upstream's UI sends.
    assert client.delete(f"/api/users/{accounts[1].id}").status_code == 200
    disabled = client.get("/api/users", params={"search": token, "status": "0"}).json()
    assert [u["id"] for u in disabled["data"]] == [accounts[1].id]
    assert disabled["data"][0]["status"] == 0
    active = client.get("/api/users", params={"search": token, "status": "active"}).json()
    assert [u["id"] for u in active["data"]] == [accounts[2].id, accounts[0].id]
    everyone = client.get("/api/users", params={"search": token, "status": "whatever"}).json()
    assert everyone["total"] == 3


def test_search_is_case_insensitive_for_unicode(admin: AdminPair) -> None:
    _, client = admin
    username = f"Ñandú{unique('')[:8]}"
    created = client.post(
        "/api/users",
        json={
            "username": username,
            "email": f"{unique('n')}@example.com",
            "password": PASSWORD,
            "role": "vendedor",
        },
    )
    assert created.status_code == 201, created.text
    found = client.get("/api/users", params={"search": username.lower()}).json()
    assert [u["username"] for u in found["data"]] == [username]
    found = client.get("/api/users", params={"search": "ÑANDÚ" + username[5:].upper()}).json()
    assert [u["username"] for u in found["data"]] == [username]


def test_create_user_by_admin(stack: Stack, admin: AdminPair) -> None:
    _, client = admin
    username = unique("new")
    response = client.post(
        "/api/users",
        json={
            "username": f"  {username}  ",
            "email": f" {username}@Example.com ",
            "password": PASSWORD,
            "role": "Vendedor",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {"message": "Usuario creado exitosamente", "id": body["id"]}
    user = client.get(f"/api/users/{body['id']}").json()
    assert user["username"] == username  # trimmed
    assert user["email"] == f"{username}@Example.com"
    assert user["role"] == "vendedor" and user["status"] == 1
    with stack.login(username, PASSWORD) as new_client:
        assert new_client.get("/api/session").json()["role"] == "vendedor"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
            "Faltan campos requeridos",
        ),
        (
            {"username": "x" * 31, "email": "a@example.com", "password": PASSWORD, "role": "admin"},
            "Usuario: Máximo 30 caracteres (tiene 31)",
        ),
        (
            {"username": "   ", "email": "a@example.com", "password": PASSWORD, "role": "admin"},
            "Usuario: El campo es obligatorio",
        ),
        (
            {"username": "a@b", "email": "a@example.com", "password": PASSWORD, "role": "admin"},
            "Usuario: No puede contener '@'",
        ),
        (
            {"username": "{u}", "email": "not-an-email", "password": PASSWORD, "role": "admin"},
            "Email: Formato de email inválido",
        ),
        (
            {"username": "{u}", "email": "a@b", "password": PASSWORD, "role": "admin"},
            "Email: Formato de email inválido",
        ),
        (
            {
                "username": "{u}",
                "email": "a" * 90 + "@example.com",
                "password": PASSWORD,
                "role": "admin",
            },
            "Email: Máximo 100 caracteres (tiene 102)",
        ),
        (
            {"username": "{u}", "email": "a@example.com", "password": "12345", "role": "admin"},
            "Contraseña debe tener mínimo 6 caracteres",
        ),
        (
            {"username": "{u}", "email": "a@example.com", "password": "p" * 129, "role": "admin"},
            "Contraseña: Máximo 128 caracteres (tiene 129)",
        ),
        (
            {
                "username": "{u}",
                "email": "a@example.com",
                "password": PASSWORD,
                "role": "superuser",
            },
            "Rol no válido",
        ),
        (
            {"username": "{u}", "email": "a@example.com", "password": PASSWORD, "role": 3},
            "Rol no válido",
        ),
    ],
)
def test_create_user_validation(admin: AdminPair, body: dict[str, Any], message: str) -> None:
    _, client = admin
    username = unique("bad")
    body = {k: (username if v == "{u}" else v) for k, v in body.items()}
    assert_error(client.post("/api/users", json=body), 400, message)
    assert client.get("/api/users", params={"search": username}).json()["total"] == 0


def test_duplicates_are_409_in_any_case_and_create_nothing(
    admin: AdminPair, root_client: ApiClient
) -> None:
    existing = create_account(root_client)
    _, client = admin
    other = unique("dup")
    same_email = client.post(
        "/api/users",
        json={
            "username": other,
            "email": existing.email.upper(),
            "password": PASSWORD,
            "role": "vendedor",
        },
    )
    assert_error(same_email, 409, "El correo ya está registrado", code="duplicate_email")
    same_name = client.post(
        "/api/users",
        json={
            "username": existing.username.upper(),
            "email": f"{other}@example.com",
            "password": PASSWORD,
            "role": "vendedor",
        },
    )
    assert_error(same_name, 409, "Este usuario ya existe", code="duplicate_username")
    assert client.get("/api/users", params={"search": other}).json()["total"] == 0


def test_concurrent_creates_of_one_username_make_exactly_one(admin: AdminPair) -> None:
    _, client = admin
    username = unique("race")

    def attempt(i: int) -> int:
        return client.post(
            "/api/users",
            json={
                "username": username if i % 2 else username.upper(),
                "email": f"{username}{i}@example.com",
                "password": PASSWORD,
                "role": "vendedor",
            },
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [201] + [409] * 7
    assert client.get("/api/users", params={"search": username}).json()["total"] == 1


def test_only_root_creates_or_grants_root_and_root_stays_single(
    admin: AdminPair, root_client: ApiClient
) -> None:
    _, client = admin
    username = unique("r")
    root_body = {
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        "role": "ROOT",
    }
    assert_error(client.post("/api/users", json=root_body), 403, code="root_protected")
    # Root itself cannot create a second root: exactly one exists (409).
    assert_error(root_client.post("/api/users", json=root_body), 409, code="single_root")
    assert client.get("/api/users", params={"search": username}).json()["total"] == 0

    target = create_account(root_client)
    assert_error(
        client.put(f"/api/users/{target.id}", json={"role": "root"}), 403, code="root_protected"
    )
    assert_error(
        root_client.put(f"/api/users/{target.id}", json={"role": "Root"}),
        409,
        "Debe existir exactamente un usuario root",
        code="single_root",
    )
    assert client.get(f"/api/users/{target.id}").json()["role"] == "vendedor"


def test_admin_cannot_modify_or_disable_root(
    admin: AdminPair, root_client: ApiClient, stack: Stack
) -> None:
    _, client = admin
    root_id = root_client.get("/api/session").json()["user_id"]
    before = client.get(f"/api/users/{root_id}").json()
    for body in (
        {"email": "taken-over@example.com"},
        {"password": "new-root-pass"},
        {"status": 0},
        {"role": "admin"},
        {"username": before["username"]},
    ):
        assert_error(client.put(f"/api/users/{root_id}", json=body), 403, code="root_protected")
    assert_error(client.delete(f"/api/users/{root_id}"), 403, code="root_protected")
    assert client.get(f"/api/users/{root_id}").json() == before
    # Root may modify itself, but not give up the root role (there must be one).
    assert_error(
        root_client.put(f"/api/users/{root_id}", json={"role": "admin"}),
        409,
        code="single_root",
    )
    same = root_client.put(f"/api/users/{root_id}", json={"email": before["email"]})
    assert same.json() == {"message": "No hay cambios que aplicar"}
    assert root_client.get("/api/session").status_code == 200


def test_nobody_can_disable_themselves(admin: AdminPair, root_client: ApiClient) -> None:
    account, client = admin
    message = "No puedes darte de baja a ti mismo"
    assert_error(client.delete(f"/api/users/{account.id}"), 403, message, code="self_protected")
    assert_error(client.put(f"/api/users/{account.id}", json={"status": 0}), 403, message)
    root_id = root_client.get("/api/session").json()["user_id"]
    assert_error(root_client.delete(f"/api/users/{root_id}"), 403, message)
    assert_error(root_client.put(f"/api/users/{root_id}", json={"status": "0"}), 403, message)
    assert client.get("/api/session").status_code == 200
    assert client.get(f"/api/users/{account.id}").json()["status"] == 1


def test_update_user(admin: AdminPair, root_client: ApiClient) -> None:
    target = create_account(root_client)
    other = create_account(root_client)
    _, client = admin
    path = f"/api/users/{target.id}"

    assert client.put(path, json={}).json() == {"message": "No hay cambios que aplicar"}
    unchanged = {
        "username": target.username,
        "email": target.email,
        "role": "VENDEDOR",
        "status": 1,
        "password": "",
    }
    response = client.put(path, json=unchanged)
    assert response.status_code == 200
    assert response.json() == {"message": "No hay cambios que aplicar"}

    new_name = unique("ren")
    response = client.put(
        path, json={"username": new_name, "email": f"{new_name}@example.com", "role": "Admin"}
    )
    assert response.status_code == 200
    assert response.json() == {"message": "Usuario actualizado exitosamente"}
    user = client.get(path).json()
    assert (user["username"], user["email"], user["role"], user["status"]) == (
        new_name,
        f"{new_name}@example.com",
        "admin",
        1,
    )

    # Validation applies on update too, and nothing is changed by a refused update.
    assert_error(
        client.put(path, json={"username": "y" * 31}),
        400,
        "Usuario: Máximo 30 caracteres (tiene 31)",
    )
    assert_error(client.put(path, json={"email": "nope"}), 400, "Email: Formato de email inválido")
    assert_error(client.put(path, json={"role": "jefe"}), 400, "Rol no válido")
    assert_error(client.put(path, json={"status": 7}), 400, "Estado: Debe ser 0 o 1")
    assert_error(
        client.put(path, json={"password": "123"}), 400, "Contraseña debe tener mínimo 6 caracteres"
    )
    assert_error(
        client.put(path, json={"email": other.email.upper()}), 409, "Este correo ya está registrado"
    )
    assert_error(
        client.put(path, json={"username": other.username.upper()}), 409, "Este usuario ya existe"
    )
    assert client.get(path).json() == user
    # A case-only change of one's own username is a change, not a conflict.
    assert client.put(path, json={"username": new_name.upper()}).json()["message"] == (
        "Usuario actualizado exitosamente"
    )
    assert_error(
        client.put("/api/users/999999999", json={"email": "z@example.com"}),
        404,
        "Usuario no encontrado",
    )


def test_delete_user(admin: AdminPair, root_client: ApiClient, stack: Stack) -> None:
    target = create_account(root_client)
    _, client = admin
    assert client.delete(f"/api/users/{target.id}").json() == {"message": "Usuario dado de baja"}
    assert client.get(f"/api/users/{target.id}").json()["status"] == 0
    # Idempotent.
    assert client.delete(f"/api/users/{target.id}").json() == {"message": "Usuario dado de baja"}
    assert_error(client.delete("/api/users/999999999"), 404, "Usuario no encontrado")
    with stack.client() as login:
        refused = login.post("/api/login", json={"username": target.username, "password": PASSWORD})
    assert_error(refused, 403, "Usuario desactivado. Contacta al administrador")
    # Re-enabling through PUT lets them in again.
    client.put(f"/api/users/{target.id}", json={"status": 1})
    with stack.login(target.username, PASSWORD):
        pass


def _logged_in(stack: Stack, account: Account) -> ApiClient:
    client = stack.login(account.username, account.password)
    assert client.get("/api/session").status_code == 200
    return client


def test_disabling_a_user_ends_their_sessions(
    stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    target = create_account(root_client)
    first, second = _logged_in(stack, target), _logged_in(stack, target)
    _, client = admin
    assert client.delete(f"/api/users/{target.id}").status_code == 200
    for session in (first, second):
        assert wait_for(signed_out(session))
        assert_error(session.get("/api/items"), 401, "No autenticado")


def test_disabling_through_put_ends_sessions(
    stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    target = create_account(root_client)
    session = _logged_in(stack, target)
    assert admin[1].put(f"/api/users/{target.id}", json={"status": 0}).status_code == 200
    assert wait_for(lambda: session.get("/api/session").status_code == 401)


def test_password_set_by_admin_ends_sessions_and_counts_as_change(
    stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    target = create_account(root_client)
    session = _logged_in(stack, target)
    response = admin[1].put(f"/api/users/{target.id}", json={"password": "brand-new-pass"})
    assert response.json() == {"message": "Usuario actualizado exitosamente"}
    assert wait_for(lambda: session.get("/api/session").status_code == 401)
    with stack.login(target.username, "brand-new-pass") as fresh:
        assert fresh.get("/api/session").json()["user_id"] == target.id


def test_role_and_username_changes_apply_to_the_next_request(
    stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    target = create_account(root_client)
    session = _logged_in(stack, target)
    assert_error(session.get("/api/users"), 403, "Permiso denegado")
    new_name = unique("promo")
    response = admin[1].put(f"/api/users/{target.id}", json={"role": "admin", "username": new_name})
    assert response.status_code == 200
    assert wait_for(lambda: session.get("/api/users").status_code == 200)
    assert session.get("/api/session").json() == {
        "user_id": target.id,
        "username": new_name,
        "role": "admin",
    }
    # And back down: the next request is refused again.
    admin[1].put(f"/api/users/{target.id}", json={"role": "vendedor"})
    assert wait_for(lambda: session.get("/api/users").status_code == 403)


async def test_user_events_follow_the_contract(
    db: Database, admin: AdminPair, root_client: ApiClient
) -> None:
    actor, client = admin
    target = create_account(root_client)
    new_name = unique("ev")
    client.put(f"/api/users/{target.id}", json={"username": new_name, "password": "another-pw"})
    client.delete(f"/api/users/{target.id}")
    async with db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT payload FROM users.outbox WHERE payload->'entity'->>'id' = :id "
                        "AND payload->'entity'->>'type' = 'user' ORDER BY seq"
                    ),
                    {"id": str(target.id)},
                )
            )
            .scalars()
            .all()
        )
    by_type = {row["type"]: row for row in rows}
    assert [row["type"] for row in rows] == ["user.created", "user.updated", "user.disabled"]

    created = by_type["user.created"]
    assert created["actor"]["role"] == "root"
    assert created["after"] == {
        "id": target.id,
        "username": target.username,
        "email": target.email,
        "role": "vendedor",
        "status": 1,
        "application": "accepted",
    }

    updated = by_type["user.updated"]
    assert updated["actor"] == {"id": actor.id, "username": actor.username, "role": "admin"}
    assert updated["data"] == {"changed": ["username"], "password_changed": True, "by_admin": True}
    assert updated["before"]["username"] == target.username
    assert updated["after"]["username"] == new_name
    assert (
        set(updated["before"])
        == set(updated["after"])
        == {"id", "username", "email", "role", "status", "application"}
    )
    assert "password" not in str(updated["after"])

    disabled = by_type["user.disabled"]
    assert disabled["before"]["status"] == 1 and disabled["after"]["status"] == 0


async def test_imported_werkzeug_hash_logs_in_and_is_upgraded(db: Database, stack: Stack) -> None:
    username = unique("legacy")
    salt, password, iterations = "Xy12AbCd", "upstream-pass", 1000
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    legacy_hash = f"pbkdf2:sha256:{iterations}${salt}${digest}"
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO users.users (username, email, password_hash, role) "
                "VALUES (:u, :e, :h, 'vendedor')"
            ),
            {"u": username, "e": f"{username}@example.com", "h": legacy_hash},
        )
    with stack.login(username, password) as client:
        assert client.get("/api/session").json()["username"] == username
    async with db.connect() as conn:
        stored = await conn.scalar(
            text("SELECT password_hash FROM users.users WHERE username = :u"), {"u": username}
        )
    assert stored.startswith("$argon2id$")
    with stack.login(username, password):
        pass
