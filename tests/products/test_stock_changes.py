"""Bulk price/stock updates, the stock ledger endpoint and the events written to the outbox."""

from __future__ import annotations

import asyncio
import random
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from stockmanager.db import Database
from tests.products.conftest import create_product, error_of
from tests.support.stack import ApiClient

LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


async def outbox_events(db: Database, product_id: int | None = None) -> list[dict[str, Any]]:
    """Payloads of the products outbox, oldest first (optionally for one product)."""
    async with db.connect() as conn:
        if product_id is None:
            rows = await conn.execute(text("SELECT payload FROM products.outbox ORDER BY seq"))
        else:
            rows = await conn.execute(
                text(
                    "SELECT payload FROM products.outbox"
                    " WHERE payload->'entity'->>'id' = :id ORDER BY seq"
                ),
                {"id": str(product_id)},
            )
        return [row.payload for row in rows]


async def events_mentioning(db: Database, event_type: str, product_id: int) -> list[dict[str, Any]]:
    """Bulk events (entity id null) whose data lists this product."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload FROM products.outbox WHERE type = :type AND"
                " payload->'data'->'products' @> CAST(:needle AS jsonb) ORDER BY seq"
            ),
            {"type": event_type, "needle": f'[{{"id": {product_id}}}]'},
        )
        return [row.payload for row in rows]


def stock_of(client: ApiClient, product_id: int) -> int:
    stock: int = client.get(f"/api/products/{product_id}").json()["stock"]
    return stock


def test_price_bulk_updates_every_listed_product(admin: ApiClient) -> None:
    first, second = create_product(admin, price=10), create_product(admin, price=20)
    response = admin.post(
        "/api/products/update_price_bulk",
        json={
            "products": [
                {"id": first["id"], "new_price": 11.5},
                {"id": second["id"], "new_price": 0},
            ]
        },
    )
    assert (response.status_code, response.json()) == (
        200,
        {"message": "Precios actualizados exitosamente"},
    )
    assert admin.get(f"/api/products/{first['id']}").json()["price"] == 11.5
    assert admin.get(f"/api/products/{second['id']}").json()["price"] == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "Datos inválidos"),
        ({"products": {"id": 1}}, "Datos inválidos"),
        ({"products": [{"new_price": 1}]}, "Cada producto requiere id"),
        ({"products": [{"id": None, "new_price": 1}]}, "Cada producto requiere id"),
        ({"products": [{"id": "abc", "new_price": 1}]}, "Cada producto requiere id"),
        ({"products": ["x"]}, "Cada producto requiere id"),
        ({"products": [{"id": True, "new_price": 1}]}, "Cada producto requiere id"),
        ({"products": [{"id": 0, "new_price": 1}]}, "Cada producto requiere id"),
    ],
)
def test_price_bulk_shape_errors(admin: ApiClient, payload: Any, message: str) -> None:
    error_of(admin.post("/api/products/update_price_bulk", json=payload), 400, message)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"new_price": "cinco"}, "Cada producto requiere un precio numérico"),
        ({"new_price": True}, "Cada producto requiere un precio numérico"),
        ({}, "Cada producto requiere un precio numérico"),
        ({"new_price": -1}, "El precio debe estar entre 0 y 1000000.0"),
        ({"new_price": 1000000.5}, "El precio debe estar entre 0 y 1000000.0"),
    ],
)
def test_price_bulk_with_one_bad_entry_writes_nothing(
    admin: ApiClient, bad: dict[str, Any], message: str
) -> None:
    good, victim = create_product(admin, price=10), create_product(admin, price=20)
    payload = {"products": [{"id": good["id"], "new_price": 99}, {"id": victim["id"], **bad}]}
    error_of(admin.post("/api/products/update_price_bulk", json=payload), 400, message)
    assert admin.get(f"/api/products/{good['id']}").json()["price"] == 10


def test_price_bulk_with_unknown_id_is_404_and_writes_nothing(admin: ApiClient) -> None:
    good = create_product(admin, price=10)
    payload = {
        "products": [{"id": good["id"], "new_price": 99}, {"id": 876543210987, "new_price": 1}]
    }
    body = error_of(
        admin.post("/api/products/update_price_bulk", json=payload), 404, "Producto no encontrado"
    )
    assert body["ids"] == [876543210987]
    assert admin.get(f"/api/products/{good['id']}").json()["price"] == 10


def test_empty_bulk_lists_succeed(admin: ApiClient) -> None:
    assert admin.post("/api/products/update_price_bulk", json={"products": []}).status_code == 200
    assert admin.post("/api/products/stock_update_bulk", json={"products": []}).status_code == 200


async def test_stock_bulk_sets_stock_records_ledger_and_events(
    admin: ApiClient, db: Database
) -> None:
    first = create_product(admin, quantity=10, min_quantity=5)
    second = create_product(admin, quantity=3, min_quantity=1)
    response = admin.post(
        "/api/products/stock_update_bulk",
        json={
            "products": [{"id": first["id"], "new_stock": 4}, {"id": second["id"], "new_stock": 30}]
        },
    )
    assert (response.status_code, response.json()) == (
        200,
        {"message": "Stock actualizado exitosamente"},
    )
    assert (stock_of(admin, first["id"]), stock_of(admin, second["id"])) == (4, 30)

    movements = admin.get(f"/api/products/{first['id']}/movements").json()["data"]
    assert [(m["reason"], m["delta"], m["quantity_after"]) for m in movements] == [
        ("bulk_stock", -6, 4),
        ("initial", 10, 10),
    ]
    bulk = await events_mentioning(db, "product.stock_bulk_updated", first["id"])
    assert len(bulk) == 1
    assert bulk[0]["entity"] == {"type": "product", "id": None}
    assert bulk[0]["data"]["products"] == [
        {"id": first["id"], "name": first["name"], "old_stock": 10, "new_stock": 4},
        {"id": second["id"], "name": second["name"], "old_stock": 3, "new_stock": 30},
    ]
    low = [e for e in await outbox_events(db, first["id"]) if e["type"] == "product.stock_low"]
    assert len(low) == 1
    assert low[0]["data"] == {
        "item_id": first["id"],
        "name": first["name"],
        "quantity": 4,
        "min_quantity": 5,
        "notify_user_id": bulk[0]["actor"]["id"],
    }
    assert not [
        e for e in await outbox_events(db, second["id"]) if e["type"] == "product.stock_low"
    ]


@pytest.mark.parametrize(
    ("bad", "status", "message"),
    [
        ({"new_stock": -1}, 400, "Cada producto requiere un stock entero no negativo"),
        ({"new_stock": 1.5}, 400, "Cada producto requiere un stock entero no negativo"),
        ({"new_stock": "3.5"}, 400, "Cada producto requiere un stock entero no negativo"),
        ({"new_stock": True}, 400, "Cada producto requiere un stock entero no negativo"),
        ({"new_stock": 10001}, 400, "El stock debe estar entre 0 y 10000"),
        ({"id": 876543210987, "new_stock": 1}, 404, "Producto no encontrado"),
    ],
)
def test_stock_bulk_with_one_bad_or_unknown_entry_writes_nothing(
    admin: ApiClient, bad: dict[str, Any], status: int, message: str
) -> None:
    good, victim = create_product(admin, quantity=10), create_product(admin, quantity=10)
    payload = {"products": [{"id": good["id"], "new_stock": 1}, {"id": victim["id"], **bad}]}
    error_of(admin.post("/api/products/stock_update_bulk", json=payload), status, message)
    assert stock_of(admin, good["id"]) == 10
    assert len(admin.get(f"/api/products/{good['id']}/movements").json()["data"]) == 1


def test_movements_list_every_change_newest_first(admin: ApiClient, root: ApiClient) -> None:
    product = create_product(admin, quantity=8)
    pid = product["id"]
    assert admin.put(f"/api/products/{pid}", json={"quantity": 12}).status_code == 200
    assert admin.put(f"/api/products/{pid}", json={"price": 1}).status_code == 200  # no stock
    assert (
        root.post(
            "/api/products/stock_update_bulk", json={"products": [{"id": pid, "new_stock": 2}]}
        ).status_code
        == 200
    )
    body = admin.get(f"/api/products/{pid}/movements").json()
    assert (body["total"], body["page"], body["pages"], body["limit"]) == (3, 1, 1, 50)
    data = body["data"]
    assert set(data[0]) == {
        "id",
        "item_id",
        "delta",
        "quantity_after",
        "reason",
        "reference",
        "actor_id",
        "actor_username",
        "created_at",
    }
    assert [(m["reason"], m["delta"], m["quantity_after"], m["actor_username"]) for m in data] == [
        ("bulk_stock", -10, 2, "root"),
        ("product_update", 4, 12, data[1]["actor_username"]),
        ("initial", 8, 8, data[1]["actor_username"]),
    ]
    assert data[1]["actor_username"] not in (None, "root")
    assert all(m["item_id"] == pid and LOCAL_TIME.match(m["created_at"]) for m in data)
    assert all(m["reference"].startswith("request:") for m in data)
    assert data[0]["id"] > data[1]["id"] > data[2]["id"]
    page = admin.get(f"/api/products/{pid}/movements", params={"limit": 1, "page": 2}).json()
    assert ([m["id"] for m in page["data"]], page["pages"]) == ([data[1]["id"]], 3)


async def test_product_lifecycle_events(admin: ApiClient, db: Database) -> None:
    product = create_product(admin, quantity=9, min_quantity=5, price=10)
    pid = product["id"]
    assert admin.put(f"/api/products/{pid}", json={"price": 12.5, "quantity": 5}).status_code == 200
    assert admin.delete(f"/api/products/{pid}").status_code == 200
    assert admin.delete(f"/api/products/{pid}").status_code == 200  # no second event
    assert admin.post(f"/api/products/{pid}/activate").status_code == 200
    events = await outbox_events(db, pid)
    assert [e["type"] for e in events] == [
        "product.created",
        "product.updated",
        "product.stock_low",
        "product.disabled",
        "product.activated",
    ]
    created, updated, low, disabled, activated = events
    snapshot = {
        "id": pid,
        "barcode": product["barcode"],
        "name": product["name"],
        "description": product["description"],
        "price": 10.0,
        "quantity": 9,
        "min_quantity": 5,
        "status": 1,
        "expiration_date": product["expiration_date"],
    }
    assert created["after"] == snapshot and created["data"] == {"product": snapshot}
    assert created["entity"] == {"type": "product", "id": pid}
    assert created["actor"]["role"] == "admin" and created["request_id"]
    assert updated["before"] == snapshot
    assert updated["after"] == {**snapshot, "price": 12.5, "quantity": 5}
    assert updated["data"] == {"changed": ["quantity", "price"]}
    assert low["data"]["quantity"] == 5 and low["data"]["min_quantity"] == 5
    assert disabled["data"] == {"name": product["name"]}
    assert (disabled["before"]["status"], disabled["after"]["status"]) == (1, 0)
    assert (activated["before"]["status"], activated["after"]["status"]) == (0, 1)


async def test_raising_min_quantity_over_stock_is_a_low_crossing(
    admin: ApiClient, db: Database
) -> None:
    product = create_product(admin, quantity=7, min_quantity=5)
    assert admin.put(f"/api/products/{product['id']}", json={"min_quantity": 7}).status_code == 200
    assert admin.put(f"/api/products/{product['id']}", json={"quantity": 6}).status_code == 200
    types = [e["type"] for e in await outbox_events(db, product["id"])]
    # Crossed once (7 > 5 → 7 <= 7); going further down does not fire again.
    assert types.count("product.stock_low") == 1


async def test_events_reach_the_stream(admin: ApiClient, db: Database) -> None:
    product = create_product(admin)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        async with db.connect() as conn:
            published = await conn.scalar(
                text(
                    "SELECT published_at IS NOT NULL FROM products.outbox"
                    " WHERE type = 'product.created' AND payload->'entity'->>'id' = :id"
                ),
                {"id": str(product["id"])},
            )
        if published:
            break
        assert asyncio.get_running_loop().time() < deadline, "outbox row never published"
        await asyncio.sleep(0.1)


async def test_price_bulk_event_lists_old_and_new_prices(admin: ApiClient, db: Database) -> None:
    first, second = create_product(admin, price=10), create_product(admin, price=20)
    payload = {
        "products": [{"id": second["id"], "new_price": 21}, {"id": first["id"], "new_price": 1.25}]
    }
    assert admin.post("/api/products/update_price_bulk", json=payload).status_code == 200
    events = await events_mentioning(db, "product.prices_bulk_updated", first["id"])
    assert len(events) == 1
    assert events[0]["entity"] == {"type": "product", "id": None}
    assert events[0]["data"]["products"] == [
        {"id": first["id"], "name": first["name"], "old_price": 10.0, "new_price": 1.25},
        {"id": second["id"], "name": second["name"], "old_price": 20.0, "new_price": 21.0},
    ]


def test_concurrent_stock_writes_never_deadlock_and_ledger_adds_up(admin: ApiClient) -> None:
    """Bulk updates listing the same products in opposite orders race with single PUTs."""
    products = [create_product(admin, quantity=50) for _ in range(4)]
    ids = [p["id"] for p in products]
    rng = random.Random(7)

    def write(index: int) -> int:
        if index % 3 == 0:
            target = rng.choice(ids)
            response = admin.put(f"/api/products/{target}", json={"quantity": rng.randint(0, 99)})
        else:
            order = ids if index % 2 else list(reversed(ids))
            payload = {"products": [{"id": pid, "new_stock": rng.randint(0, 99)} for pid in order]}
            response = admin.post("/api/products/stock_update_bulk", json=payload)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(write, range(40)))
    # 400 only when a PUT drew the value the product already had ("No hay datos...").
    assert set(statuses) <= {200, 400} and statuses.count(200) >= 30, statuses
    for pid in ids:
        movements = admin.get(f"/api/products/{pid}/movements", params={"limit": 250}).json()
        entries = list(reversed(movements["data"]))
        assert entries[0]["reason"] == "initial"
        running = 0
        for entry in entries:  # every change recorded, in order, replaying to the stock
            running += entry["delta"]
            assert entry["quantity_after"] == running
        assert running == stock_of(admin, pid)
