"""Issue 7 acceptance: a scripted session through the gateway, then `GET /api/all` as root shows
every action in order with the right actor, IP, entity, old/new values and status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.audit.support import (
    PASSWORD,
    User,
    as_root,
    login,
    sales_api_available,
    users_api_available,
    wait_until,
)
from tests.support.stack import Stack, unique


def test_scripted_session_is_audited_in_order(
    stack: Stack, root_user: User, vendedor: User
) -> None:
    if not (sales_api_available(stack) and users_api_available(stack)):
        pytest.skip("products, sales and users endpoints are needed for the scripted session")
    tag = unique("accept-")
    step = iter(range(1, 100))

    def rid() -> dict[str, str]:
        return {"X-Request-ID": f"{tag}-{next(step):02d}"}

    start = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    seller = login(stack, vendedor)
    barcode, name, new_user = unique("99")[:20], unique("Acc")[:25], unique("accu")

    with stack.client() as root:
        # 1. login
        response = root.post(
            "/api/login", headers=rid(), json={"username": "root", "password": stack.root_password}
        )
        assert response.status_code == 200
        # 2. create product
        response = root.post(
            "/api/products",
            headers=rid(),
            json={
                "barcode": barcode,
                "name": name,
                "quantity": 50,
                "min_quantity": 0,
                "price": 10.0,
            },
        )
        assert response.status_code == 201, response.text
        listed = root.get("/api/products_all", params={"search": barcode}).json()["data"]
        product = int(next(p["id"] for p in listed if p["barcode"] == barcode))
        # 3. update price
        response = root.put(f"/api/products/{product}", headers=rid(), json={"price": 12.0})
        assert response.status_code == 200, response.text
        # 4. a vendedor tries to delete it: refused by the gateway
        refused = seller.delete(f"/api/products/{product}", headers=rid())
        assert refused.status_code == 403
        # 5. bulk sale
        response = root.post(
            "/api/sales/bulk",
            headers=rid(),
            json={
                "items": [{"item_id": product, "quantity": 2}],
                "payment_method": "Efectivo",
            },
        )
        assert response.status_code == 201, response.text
        sale = int(response.json()["sale_id"])
        # 6. sale edit
        response = root.put(
            f"/api/sales/{sale}",
            headers=rid(),
            json={
                "items": [{"item_id": product, "quantity": 3}],
                "vendor_id": root_user.id,
                "payment_method": "Tarjeta",
            },
        )
        assert response.status_code == 200, response.text
        # 7. user create
        response = root.post(
            "/api/users",
            headers=rid(),
            json={
                "username": new_user,
                "email": f"{new_user}@example.test",
                "password": PASSWORD,
                "role": "vendedor",
            },
        )
        assert response.status_code == 201, response.text
        users = root.get("/api/users", params={"search": new_user}).json()["data"]
        created_user = int(next(u["id"] for u in users if u["username"] == new_user))
        # 8. logout
        assert root.post("/api/logout", headers=rid()).status_code == 200
    seller.close()

    def session_records() -> list[dict[str, Any]] | None:
        with as_root(stack) as reader:
            response = reader.get("/api/all", params={"from": start, "limit": 500})
        assert response.status_code == 200
        mine = [r for r in response.json()["records"] if (r["request_id"] or "").startswith(tag)]
        return mine if len(mine) >= 8 else None

    records = list(reversed(wait_until(session_records, timeout=30, interval=0.2)))
    root_id, seller_id = root_user.id, vendedor.id
    assert [
        (
            r["request_id"][-2:],
            r["action"],
            r["entity_type"],
            r["entity_id"],
            r["user_id"],
            r["username"],
            r["status"],
        )
        for r in records
    ] == [
        ("01", "login", "user", root_id, root_id, "root", "success"),
        ("02", "create", "product", product, root_id, "root", "success"),
        ("03", "update", "product", product, root_id, "root", "success"),
        ("04", "delete", "product", product, seller_id, vendedor.username, "error"),
        ("05", "create", "sale", sale, root_id, "root", "success"),
        ("06", "update", "sale", sale, root_id, "root", "success"),
        ("07", "create", "user", created_user, root_id, "root", "success"),
        ("08", "logout", "user", root_id, root_id, "root", "success"),
    ]
    # Newest first in the list itself, i.e. strictly in the order they happened.
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)
    assert {r["ip_address"] for r in records} == {"127.0.0.1"}
    assert {r["role"] for r in records} == {"root", "vendedor"}
    login_, created, updated, denied, sold, edited, user, logout = records
    assert login_["old_value"] is None and logout["new_value"] is None
    assert created["old_value"] is None
    assert (created["new_value"]["barcode"], created["new_value"]["name"]) == (barcode, name)
    assert created["description"].startswith(
        f"Nuevo Producto creado — Código de barras: '{barcode}', Nombre: '{name}'"
    )
    assert "Precio: '$10.00'" in created["description"]
    assert float(updated["old_value"]["price"]) == 10.0
    assert float(updated["new_value"]["price"]) == 12.0
    assert updated["description"] == "Cambios: Precio: '10.0' → '12.0'"
    assert denied["old_value"] is None and denied["new_value"] is None
    assert denied["description"] == (
        f"Error al ejecutar delete de Producto #{product}: HTTP 403 "
        f"(DELETE /api/products/{product})"
    )
    assert sold["old_value"] is None
    assert [(i["item_id"], i["quantity"]) for i in sold["new_value"]["items"]] == [(product, 2)]
    assert float(sold["new_value"]["total"]) == 24.0
    assert [(i["item_id"], i["quantity"]) for i in edited["old_value"]["items"]] == [(product, 2)]
    assert [(i["item_id"], i["quantity"]) for i in edited["new_value"]["items"]] == [(product, 3)]
    assert (edited["old_value"]["payment_method"], edited["new_value"]["payment_method"]) == (
        "Efectivo",
        "Tarjeta",
    )
    assert user["new_value"]["username"] == new_user
    assert "password" not in user["new_value"] and "password_hash" not in user["new_value"]
    assert PASSWORD not in str(records)

    # The product's trail, as an admin would read it: the same story, oldest first.
    with as_root(stack) as reader:
        trail = reader.get(f"/api/entity/product/{product}").json()
    assert [(c["action"], c["status"]) for c in trail["changes"]] == [
        ("create", "success"),
        ("update", "success"),
        ("delete", "error"),
    ]
