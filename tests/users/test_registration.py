"""POST /api/register, /api/applications (+ approve/reject), GET /api/suggest/vendors."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from stockmanager.db import Database
from tests.support.stack import ApiClient, Stack, unique
from tests.users.conftest import PASSWORD, Account, assert_error, create_account

AdminPair = tuple[Account, ApiClient]
DISABLED = "Usuario desactivado. Contacta al administrador"


def register(client: httpx.Client, prefix: str = "reg") -> tuple[str, str]:
    username = unique(prefix)
    email = f"{username}@example.com"
    response = client.post(
        "/api/register", json={"username": username, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "success": True,
        "message": "Cuenta creada. Espera la aprobación del administrador.",
    }
    return username, email


def pending_ids(client: httpx.Client) -> list[int]:
    body = client.get("/api/applications", params={"limit": 100}).json()
    return [row["id"] for row in body["data"]]


def user_id(admin_client: httpx.Client, username: str) -> int:
    found = admin_client.get("/api/users", params={"search": username}).json()["data"]
    assert len(found) == 1
    return int(found[0]["id"])


def try_login(stack: Stack, username: str, password: str = PASSWORD) -> httpx.Response:
    with stack.client() as client:
        return client.post("/api/login", json={"username": username, "password": password})


def test_registered_user_waits_for_approval(stack: Stack, admin: AdminPair) -> None:
    _, admin_client = admin
    with stack.client() as anonymous:
        username, email = register(anonymous)
    uid = user_id(admin_client, username)
    user = admin_client.get(f"/api/users/{uid}").json()
    assert (user["role"], user["status"], user["email"]) == ("vendedor", 0, email)

    # Pending: the account state is revealed only to the right password.
    assert_error(try_login(stack, username), 403, DISABLED)
    assert_error(try_login(stack, username, "wrong-password"), 401, "Credenciales inválidas")

    listed = admin_client.get("/api/applications", params={"limit": 100}).json()
    row = next(r for r in listed["data"] if r["id"] == uid)
    assert row == {
        "id": uid,
        "username": username,
        "email": email,
        "created_at": user["created_at"],
    }

    approved = admin_client.post(f"/api/applications/{uid}/approve")
    assert approved.status_code == 200
    assert approved.json() == {"message": "Solicitud aprobada"}
    assert uid not in pending_ids(admin_client)
    assert admin_client.get(f"/api/users/{uid}").json()["status"] == 1
    response = try_login(stack, username)
    assert response.status_code == 200 and response.json()["role"] == "vendedor"

    # Only pending applications can be decided.
    assert_error(
        admin_client.post(f"/api/applications/{uid}/approve"), 409, "La solicitud no está pendiente"
    )
    assert_error(
        admin_client.post(f"/api/applications/{uid}/reject"), 409, "La solicitud no está pendiente"
    )


def test_rejected_user_cannot_log_in(stack: Stack, admin: AdminPair) -> None:
    _, admin_client = admin
    with stack.client() as anonymous:
        username, _ = register(anonymous)
    uid = user_id(admin_client, username)
    rejected = admin_client.post(f"/api/applications/{uid}/reject")
    assert rejected.status_code == 200
    assert rejected.json() == {"message": "Solicitud rechazada"}
    assert uid not in pending_ids(admin_client)
    assert_error(try_login(stack, username), 403, DISABLED)
    assert_error(admin_client.post(f"/api/applications/{uid}/approve"), 409)
    assert_error(try_login(stack, username), 403, DISABLED)


def test_accounts_made_by_admins_are_not_applications(
    admin: AdminPair, root_client: ApiClient
) -> None:
    account = create_account(root_client)
    assert_error(admin[1].post(f"/api/applications/{account.id}/approve"), 409)
    assert_error(admin[1].post(f"/api/applications/{account.id}/reject"), 409)
    assert_error(
        admin[1].post("/api/applications/999999999/approve"), 404, "Solicitud no encontrada"
    )
    assert_error(
        admin[1].post("/api/applications/999999999/reject"), 404, "Solicitud no encontrada"
    )


def test_concurrent_decisions_one_wins(stack: Stack, admin: AdminPair) -> None:
    _, admin_client = admin
    with stack.client() as anonymous:
        username, _ = register(anonymous)
    uid = user_id(admin_client, username)
    paths = [f"/api/applications/{uid}/{'approve' if i % 2 else 'reject'}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda p: admin_client.post(p).status_code, paths))
    assert statuses == [200] + [409] * 7


def test_applications_list_envelope_order_and_clamps(stack: Stack, admin: AdminPair) -> None:
    _, admin_client = admin
    with stack.client() as anonymous:
        mine = [user_id(admin_client, register(anonymous)[0]) for _ in range(3)]
    body = admin_client.get("/api/applications", params={"limit": 100}).json()
    assert set(body) == {"data", "page", "pages", "total"}
    assert body["page"] == 1 and body["total"] >= 3
    assert body["pages"] == max(1, math.ceil(body["total"] / 100))
    ids = [row["id"] for row in body["data"]]
    assert [i for i in ids if i in mine] == list(reversed(mine))  # newest first

    one = admin_client.get("/api/applications", params={"limit": 0}).json()
    assert len(one["data"]) == 1 and one["pages"] == one["total"]
    big = admin_client.get("/api/applications", params={"limit": 100000}).json()
    assert len(big["data"]) == min(100, big["total"])
    odd = admin_client.get("/api/applications", params={"page": "-3", "limit": "abc"}).json()
    assert odd["page"] == 1 and len(odd["data"]) == min(10, odd["total"])
    second = admin_client.get("/api/applications", params={"page": 2, "limit": 1}).json()
    assert second["page"] == 2 and second["data"][0]["id"] == ids[1]


def test_applications_need_admin(stack: Stack, seller: AdminPair, admin: AdminPair) -> None:
    with stack.client() as anonymous:
        username, _ = register(anonymous)
        uid = user_id(admin[1], username)
        for method, path in (
            ("GET", "/api/applications"),
            ("POST", f"/api/applications/{uid}/approve"),
            ("POST", f"/api/applications/{uid}/reject"),
        ):
            assert_error(anonymous.request(method, path), 401, "No autenticado")
            assert_error(seller[1].request(method, path), 403, "Permiso denegado")
    assert uid in pending_ids(admin[1])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"username": "{u}", "email": "{u}@example.com"}, "Faltan campos requeridos"),
        (
            {"username": "", "email": "{u}@example.com", "password": PASSWORD},
            "Faltan campos requeridos",
        ),
        (
            {"username": "{u}", "email": "{u}@example.com", "password": "12345"},
            "Contraseña debe tener mínimo 6 caracteres",
        ),
        (
            {"username": "{u}", "email": "{u}-at-example.com", "password": PASSWORD},
            "Email inválido: Formato de email inválido",
        ),
        ({"username": "{u}" + "x" * 30, "email": "{u}@example.com", "password": PASSWORD}, None),
        (
            {"username": "{u}", "email": "{u}" + "e" * 100 + "@example.com", "password": PASSWORD},
            None,
        ),
        (
            {"username": "{u}", "email": "{u}@example.com", "password": "p" * 129},
            "Contraseña: Máximo 128 caracteres (tiene 129)",
        ),
    ],
)
def test_register_validation(
    stack: Stack, admin: AdminPair, body: dict[str, Any], message: str | None
) -> None:
    username = unique("rv")
    body = {k: v.replace("{u}", username) for k, v in body.items()}
    with stack.client() as anonymous:
        error = assert_error(anonymous.post("/api/register", json=body), 400, message)
    if "x" * 30 in body["username"]:
        assert error["error"] == f"Usuario: Máximo 30 caracteres (tiene {len(body['username'])})"
    elif message is None:
        assert error["error"].startswith("Email: Máximo 100 caracteres (tiene ")
    assert admin[1].get("/api/users", params={"search": username}).json()["total"] == 0


def test_register_duplicates_are_409(
    stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    existing = create_account(root_client)
    other = unique("rd")
    with stack.client() as anonymous:
        for body in (
            {"username": existing.username.upper(), "email": f"{other}@example.com"},
            {"username": other, "email": existing.email.upper()},
        ):
            response = anonymous.post("/api/register", json={**body, "password": PASSWORD})
            assert_error(response, 409, "Usuario o correo ya existe")
    assert admin[1].get("/api/users", params={"search": other}).json()["total"] == 0


async def test_registration_and_decision_events(
    db: Database, stack: Stack, admin: AdminPair
) -> None:
    actor, admin_client = admin
    with stack.client() as anonymous:
        username, email = register(anonymous)
    uid = user_id(admin_client, username)
    admin_client.post(f"/api/applications/{uid}/approve")
    async with db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT payload FROM users.outbox WHERE payload->'entity'->>'id' = :id "
                        "ORDER BY seq"
                    ),
                    {"id": str(uid)},
                )
            )
            .scalars()
            .all()
        )
    registered, approved = rows
    assert registered["type"] == "user.registered"
    assert registered["actor"] == {"id": None, "username": None, "role": None}
    assert registered["entity"] == {"type": "user", "id": uid}
    assert registered["after"] == {
        "id": uid,
        "username": username,
        "email": email,
        "role": "vendedor",
        "status": 0,
        "application": "pending",
    }
    assert approved["type"] == "application.approved"
    assert approved["entity"] == {"type": "application", "id": uid}
    assert approved["actor"]["id"] == actor.id
    assert approved["before"] == {"status": 0, "application": "pending"}
    assert approved["after"] == {"status": 1, "application": "accepted"}


def test_suggest_vendors(
    stack: Stack, seller: AdminPair, admin: AdminPair, root_client: ApiClient
) -> None:
    token = unique("sv")
    sellers = [create_account(root_client, "vendedor", prefix=f"{token}a") for _ in range(2)]
    an_admin = create_account(root_client, "admin", prefix=f"{token}b")
    disabled = create_account(root_client, "vendedor", prefix=f"{token}c")
    admin[1].delete(f"/api/users/{disabled.id}")
    with stack.client() as anonymous:
        anonymous.post(
            "/api/register",
            json={"username": f"{token}d", "password": PASSWORD, "email": f"{token}d@example.com"},
        )
        assert_error(anonymous.get("/api/suggest/vendors", params={"q": token}), 401)

    _, client = seller  # any logged-in role
    body = client.get("/api/suggest/vendors", params={"q": token.upper()}).json()
    assert body == {
        "data": [
            {"id": a.id, "username": a.username, "email": a.email}
            for a in sorted([*sellers, an_admin], key=lambda a: a.username)
        ]
    }
    assert client.get("/api/suggest/vendors", params={"q": "  "}).json() == {"data": []}
    assert client.get("/api/suggest/vendors").json() == {"data": []}
    # Root is never suggested, and wildcards are literal.
    assert client.get("/api/suggest/vendors", params={"q": "root@localhost"}).json() == {"data": []}
    assert client.get("/api/suggest/vendors", params={"q": "%"}).json()["data"] == []


async def test_suggest_vendors_returns_at_most_ten(db: Database, seller: AdminPair) -> None:
    token = unique("sv")
    # Inserted directly (one shared hash) to keep the test fast; creation is tested elsewhere.
    async with db.transaction() as conn:
        for i in range(12):
            await conn.execute(
                text(
                    "INSERT INTO users.users (username, email, password_hash, role) "
                    "VALUES (:u, :e, 'x', 'vendedor')"
                ),
                {"u": f"{token}{i:02d}", "e": f"{token}{i:02d}@example.com"},
            )
    many = seller[1].get("/api/suggest/vendors", params={"q": token}).json()["data"]
    assert [row["username"] for row in many] == [f"{token}{i:02d}" for i in range(10)]
