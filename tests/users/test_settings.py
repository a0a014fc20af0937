"""PUT /api/settings/profile, PUT /api/settings/password, /api/settings/actual[/<key>]."""

from __future__ import annotations

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

AdminPair = tuple[Account, ApiClient]
KEYS = {
    "business": {"name", "address", "phone", "tax_id", "currency", "timezone"},
    "inventory": {"default_min_stock", "low_stock_alerts"},
    "sales": {"default_payment_method", "receipt_footer"},
}


# --- profile ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/settings/profile", "/api/api/settings/profile"])
async def test_profile_changes_own_email(
    db: Database, stack: Stack, root_client: ApiClient, path: str
) -> None:
    account = create_account(root_client)
    other = create_account(root_client)
    with stack.login(account.username, PASSWORD) as client:
        assert_error(client.put(path, json={}), 400, "Email es requerido")
        assert_error(client.put(path, json={"email": "   "}), 400, "Email es requerido")
        assert_error(client.put(path, json={"email": "sin-arroba"}), 400, "Email inválido")
        assert_error(client.put(path, json={"email": "a@b"}), 400, "Email inválido")
        assert_error(
            client.put(path, json={"email": other.email.upper()}),
            409,
            "El correo ya está registrado",
        )
        new_email = f"{unique('p')}@example.org"
        response = client.put(path, json={"email": f" {new_email} "})
        assert response.status_code == 200
        assert response.json() == {"success": True, "message": "Perfil actualizado correctamente"}
        # Unchanged e-mail: still a success, nothing written.
        assert client.put(path, json={"email": new_email}).status_code == 200
        # The profile change does not end the session.
        assert client.get("/api/session").status_code == 200
    assert root_client.get(f"/api/users/{account.id}").json()["email"] == new_email
    with stack.client() as anonymous:
        assert_error(anonymous.put(path, json={"email": new_email}), 401, "No autenticado")

    async with db.connect() as conn:
        events = (
            (
                await conn.execute(
                    text(
                        "SELECT payload FROM users.outbox WHERE type = 'user.updated' "
                        "AND payload->'entity'->>'id' = :id"
                    ),
                    {"id": str(account.id)},
                )
            )
            .scalars()
            .all()
        )
    assert len(events) == 1
    assert events[0]["data"] == {"changed": ["email"], "password_changed": False, "by_admin": False}
    assert events[0]["before"]["email"] == account.email
    assert events[0]["after"]["email"] == new_email
    assert events[0]["actor"]["id"] == account.id


# --- password ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/settings/password", "/api/api/settings/password"])
def test_change_own_password(stack: Stack, root_client: ApiClient, path: str) -> None:
    account = create_account(root_client)
    client = stack.login(account.username, PASSWORD)
    other_session = stack.login(account.email, PASSWORD)

    def body(
        current: str = PASSWORD, new: str = "new-password-1", confirm: str | None = None
    ) -> dict[str, str]:
        return {
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        }

    assert_error(
        client.put(path, json={"current_password": PASSWORD}),
        400,
        "Todos los campos son requeridos",
    )
    assert_error(client.put(path, json=body(current="")), 400, "Todos los campos son requeridos")
    assert_error(
        client.put(path, json=body(confirm="other-password")),
        400,
        "Las contraseñas nuevas no coinciden",
    )
    assert_error(
        client.put(path, json=body(new="12345")),
        400,
        "La contraseña debe tener al menos 6 caracteres",
    )
    assert_error(
        client.put(path, json=body(new="x" * 129)),
        400,
        "La contraseña debe tener como máximo 128 caracteres",
    )
    assert_error(
        client.put(path, json=body(current="not-my-password")), 401, "Contraseña actual incorrecta"
    )
    assert client.get("/api/session").status_code == 200  # refusals end nothing

    response = client.put(path, json=body())
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Contraseña actualizada correctamente"}
    # Every session of the user ends, including the one that made the change.
    for session in (client, other_session):
        assert wait_for(signed_out(session))
    with stack.login(account.username, "new-password-1") as fresh:
        assert fresh.get("/api/session").json()["user_id"] == account.id
    with stack.client() as anonymous:
        assert_error(anonymous.put(path, json=body()), 401, "No autenticado")


def test_wrong_current_passwords_are_throttled(stack: Stack, root_client: ApiClient) -> None:
    account = create_account(root_client)
    with stack.login(account.username, PASSWORD) as client:
        wrong = {
            "current_password": "guess-guess",
            "new_password": "abcdefg",
            "confirm_password": "abcdefg",
        }
        for _ in range(5):
            assert_error(client.put("/api/settings/password", json=wrong), 401)
        right = {**wrong, "current_password": PASSWORD}
        limited = client.put("/api/settings/password", json=right)
        assert_error(limited, 429, code="rate_limited")
        assert int(limited.headers["retry-after"]) > 0
    with stack.login(account.username, PASSWORD):
        pass  # the password did not change


# --- settings/actual --------------------------------------------------------------------------


def test_settings_read_access(
    stack: Stack, seller: AdminPair, admin: AdminPair, root_client: ApiClient
) -> None:
    for client in (admin[1], root_client):
        for prefix in ("/api/settings", "/api/api/settings"):
            body = client.get(f"{prefix}/actual").json()
            assert {ns: set(values) for ns, values in body.items()} == KEYS
            assert body["business"]["timezone"] == "America/Argentina/Buenos_Aires"
            assert isinstance(body["inventory"]["default_min_stock"], int)
            assert isinstance(body["inventory"]["low_stock_alerts"], bool)
    with stack.client() as anonymous:
        assert_error(anonymous.get("/api/settings/actual"), 401)
        assert_error(anonymous.get("/api/settings/actual/business.name"), 401)
    assert_error(seller[1].get("/api/settings/actual"), 403, "Permiso denegado")
    assert_error(seller[1].get("/api/settings/actual/business.name"), 403)


def test_get_one_setting(admin: AdminPair) -> None:
    _, client = admin
    assert client.get("/api/settings/actual/business.address").json() == {"business.address": ""}
    assert client.get("/api/settings/actual/business.timezone").json() == {
        "business.timezone": "America/Argentina/Buenos_Aires"
    }
    namespace = client.get("/api/api/settings/actual/inventory").json()
    assert set(namespace) == {"inventory"}
    assert set(namespace["inventory"]) == KEYS["inventory"]
    missing = client.get("/api/settings/actual/app.secret_key")
    assert_error(missing, 404, "Configuración 'app.secret_key' no encontrada", success=False)


async def test_root_writes_whitelisted_settings(
    db: Database, stack: Stack, admin: AdminPair, root_client: ApiClient
) -> None:
    name = f"Almacén {unique('')}"
    response = root_client.put("/api/settings/actual/business.name", json={"value": name})
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "message": "Configuración 'business.name' actualizada correctamente",
        "data": {"business.name": name},
    }
    assert admin[1].get("/api/settings/actual/business.name").json() == {"business.name": name}
    assert admin[1].get("/api/settings/actual").json()["business"]["name"] == name

    # Only root writes (the gateway refuses admins; the service would too).
    before = root_client.get("/api/settings/actual/business.phone").json()
    assert_error(admin[1].put("/api/settings/actual/business.phone", json={"value": "1"}), 403)
    assert_error(admin[1].put("/api/api/settings/actual/business.phone", json={"value": "1"}), 403)
    with stack.client() as anonymous:
        assert_error(anonymous.put("/api/settings/actual/business.phone", json={"value": "1"}), 401)
    assert root_client.get("/api/settings/actual/business.phone").json() == before

    async with db.connect() as conn:
        event = (
            await conn.execute(
                text(
                    "SELECT payload FROM users.outbox WHERE type = 'settings.updated' "
                    "AND payload->'after'->>'value' = :v"
                ),
                {"v": name},
            )
        ).scalar_one()
    assert event["entity"] == {"type": "settings", "id": None}
    assert event["data"] == {"key": "business.name"}
    assert event["after"] == {"value": name}
    assert set(event["before"]) == {"value"}
    assert event["actor"]["role"] == "root"


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("inventory.default_min_stock", 12, 12),
        ("inventory.default_min_stock", "7", 7),
        ("inventory.low_stock_alerts", False, False),
        ("inventory.low_stock_alerts", "true", True),
        ("business.currency", "usd", "USD"),
        ("sales.receipt_footer", "  ¡Gracias!  ", "¡Gracias!"),
        ("sales.default_payment_method", "Tarjeta", "Tarjeta"),
    ],
)
def test_setting_values_are_typed(
    root_client: ApiClient, key: str, value: object, stored: object
) -> None:
    response = root_client.put(f"/api/api/settings/actual/{key}", json={"value": value})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {key: stored}
    assert root_client.get(f"/api/settings/actual/{key}").json() == {key: stored}


@pytest.mark.parametrize(
    ("key", "body", "status", "message"),
    [
        ("business.name", {}, 400, "El valor es requerido"),
        ("business.name", {"value": None}, 400, "El valor es requerido"),
        (
            "business.name",
            {"value": "   "},
            400,
            "Configuración 'business.name': no puede estar vacío",
        ),
        ("business.name", {"value": 5}, 400, "Configuración 'business.name': debe ser texto"),
        (
            "business.name",
            {"value": "n" * 101},
            400,
            "Configuración 'business.name': máximo 100 caracteres (tiene 101)",
        ),
        ("inventory.default_min_stock", {"value": "abc"}, 400, None),
        ("inventory.default_min_stock", {"value": 1001}, 400, None),
        ("inventory.default_min_stock", {"value": -1}, 400, None),
        ("inventory.default_min_stock", {"value": True}, 400, None),
        ("inventory.default_min_stock", {"value": 2.5}, 400, None),
        (
            "inventory.low_stock_alerts",
            {"value": "yes"},
            400,
            "Configuración 'inventory.low_stock_alerts': debe ser true o false",
        ),
        ("business.currency", {"value": "US"}, 400, None),
        ("business.timezone", {"value": "UTC"}, 400, None),
        (
            "roles.vendedor.users_manage",
            {"value": True},
            404,
            "Configuración 'roles.vendedor.users_manage' no encontrada",
        ),
        ("business", {"value": {"name": "x"}}, 404, "Configuración 'business' no encontrada"),
    ],
)
def test_setting_writes_refused(
    root_client: ApiClient, key: str, body: dict[str, Any], status: int, message: str | None
) -> None:
    before = root_client.get("/api/settings/actual").json()
    error = assert_error(
        root_client.put(f"/api/settings/actual/{key}", json=body), status, message, success=False
    )
    if message is None:
        assert error["error"].startswith(f"Configuración '{key}'")
    assert root_client.get("/api/settings/actual").json() == before
