"""The real producers' payloads, end to end: each service's events become the records the
docs promise (action, entity, actor, old/new values, description)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.audit.support import (
    PASSWORD,
    User,
    as_root,
    create_product,
    sales_api_available,
    tagged_records,
    users_api_available,
)
from tests.support.stack import Stack, unique


def test_users_products_and_notifications_events(stack: Stack, root_user: User) -> None:
    if not (sales_api_available(stack) and users_api_available(stack)):
        pytest.skip("products and users endpoints are needed")
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    tag = unique("prod-")
    steps = iter(range(1, 100))

    def rid() -> dict[str, str]:
        return {"X-Request-ID": f"{tag}-{next(steps):02d}"}

    username = unique("reg")
    product = create_product(stack, 10, price=10.0)
    with stack.client() as anonymous:
        response = anonymous.post(
            "/api/register",
            headers=rid(),
            json={"username": username, "email": f"{username}@example.test", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        response = anonymous.post(
            "/api/users/reset-password",
            headers=rid(),
            json={"email": f"{unique('nobody')}@example.test"},
        )
        assert response.status_code == 200, response.text
    with as_root(stack) as root:
        listed = root.get("/api/users", params={"search": username}).json()["data"]
        user_id = int(next(u["id"] for u in listed if u["username"] == username))
        calls = [
            root.post(f"/api/applications/{user_id}/approve", headers=rid()),
            root.put(f"/api/users/{user_id}", headers=rid(), json={"role": "admin"}),
            root.delete(f"/api/users/{user_id}", headers=rid()),
            root.post(
                "/api/products/update_price_bulk",
                headers=rid(),
                json={"products": [{"id": product, "new_price": 20.5}]},
            ),
            root.post(
                "/api/products/stock_update_bulk",
                headers=rid(),
                json={"products": [{"id": product, "new_stock": 7}]},
            ),
            root.delete(f"/api/products/{product}", headers=rid()),
            root.post(f"/api/products/{product}/activate", headers=rid()),
            root.post(
                "/api/notifications/create",
                headers=rid(),
                json={"user_id": root_user.id, "title": "Aviso", "message": "Hola"},
            ),
        ]
        assert [c.status_code for c in calls] == [200, 200, 200, 200, 200, 200, 200, 201], [
            c.text for c in calls
        ]

    records = tagged_records(stack, tag, since, 10)
    assert [(r["action"], r["entity_type"], r["status"]) for r in records] == [
        ("register", "user", "success"),
        ("reset_password", "user", "success"),
        ("approve", "application", "success"),
        ("update", "user", "success"),
        ("delete", "user", "success"),
        ("update_price_bulk", "product", "success"),
        ("stock_update_bulk", "product", "success"),
        ("delete", "product", "success"),
        ("activate", "product", "success"),
        ("create", "notification", "success"),
    ]
    (
        registered,
        reset,
        approved,
        updated,
        disabled,
        prices,
        stock,
        deleted,
        activated,
        notified,
    ) = records
    # Anonymous actors: no user; the registered account is the entity.
    assert (registered["user_id"], registered["entity_id"]) == (None, user_id)
    assert registered["description"].startswith(
        f"Nuevo Usuario registrado — Nombre de usuario: '{username}', Email: "
    )
    assert "password_hash" not in registered["new_value"]
    assert reset["user_id"] is None and reset["description"] == (
        "Solicitud de código de recuperación de contraseña (correo registrado: no)"
    )
    # Admin actions carry the actor and the before/after snapshots.
    assert all(r["user_id"] == root_user.id for r in records[2:])
    assert approved["entity_id"] == user_id
    assert approved["old_value"]["application"] == "pending"
    assert approved["new_value"]["application"] == "accepted"
    assert updated["description"] == "Cambios: Rol: 'vendedor' → 'admin'"
    assert (updated["old_value"]["role"], updated["new_value"]["role"]) == ("vendedor", "admin")
    assert disabled["description"] == (
        f"Usuario eliminado — Nombre de usuario: '{username}' (ID: {user_id})"
    )
    assert prices["entity_id"] is None
    assert prices["description"].startswith("Actualización masiva de precios (1 producto) — ")
    assert prices["description"].endswith(f"(ID: {product}): '10.0' → '20.5'")
    assert stock["description"].endswith(f"(ID: {product}): '10' → '7'")
    assert deleted["description"].startswith("Producto eliminado — Nombre: '")
    assert (deleted["old_value"]["status"], deleted["new_value"]["status"]) == (1, 0)
    assert activated["description"].startswith("Producto activado — Nombre: '")
    assert notified["description"] == (
        f"Nueva Notificación creada — Usuario destino (ID): '{root_user.id}', Título: 'Aviso', "
        "Mensaje: 'Hola', Tipo: 'info'"
    )

    # The product's trail includes the bulk changes, narrowed to this product.
    with as_root(stack) as root:
        trail = root.get(f"/api/entity/product/{product}").json()["changes"]
    assert [c["action"] for c in trail] == [
        "create",
        "update_price_bulk",
        "stock_update_bulk",
        "delete",
        "activate",
    ]
    assert trail[1]["old_value"]["price"] == 10.0 and trail[1]["new_value"]["price"] == 20.5
    assert trail[2]["old_value"]["quantity"] == 10 and trail[2]["new_value"]["quantity"] == 7
    with as_root(stack) as root:
        user_trail = root.get(f"/api/entity/user/{user_id}").json()["changes"]
        application_trail = root.get(f"/api/entity/application/{user_id}").json()["changes"]
    assert [c["action"] for c in user_trail] == ["register", "update", "delete"]
    assert [c["action"] for c in application_trail] == ["approve"]
