"""PUT /api/sales/<id>: stock moves by the difference, old lines keep their prices."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from stockmanager.db import Database
from tests.sales.support import (
    Account,
    assert_error,
    create_account,
    create_products,
    ledger,
    lines_of,
    outbox_events,
    set_price,
    stock,
)
from tests.support.stack import Stack, unique


def sell(account: Account, *lines: tuple[int, int]) -> int:
    response = account.client.post(
        "/api/sales/bulk", json={"items": [{"item_id": i, "quantity": q} for i, q in lines]}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["sale_id"])


def put(
    account: Account, sale_id: int, lines: list[tuple[int, int]], **extra: Any
) -> httpx.Response:
    payload = {"items": [{"item_id": i, "quantity": q} for i, q in lines], **extra}
    return account.client.put(f"/api/sales/{sale_id}", json=payload)


async def test_edit_moves_stock_by_the_difference_and_keeps_prices(
    stack: Stack, db: Database, seller: Account, admin: Account
) -> None:
    na, nb, nc = unique("A"), unique("B"), unique("C")
    a, b, c = await create_products(
        db,
        {"name": na, "price": "1.00", "quantity": 10},
        {"name": nb, "price": "3.00", "quantity": 10},
        {"name": nc, "price": "2.00", "quantity": 10, "min_quantity": 6},
    )
    sale_id = sell(seller, (a, 3), (b, 2))
    assert await stock(db, a, b, c) == [7, 8, 10]
    await set_price(db, a, "5.00")  # a stays in the sale: keeps 1.00
    await set_price(db, c, "2.50")  # c is new in the sale: takes 2.50

    response = put(admin, sale_id, [(c, 4), (a, 1)], payment_method="Transferencia")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Venta actualizada exitosamente"}

    assert await stock(db, a, b, c) == [9, 10, 6]
    assert [tuple(r) for r in await lines_of(db, sale_id)] == [
        (a, na, 1, Decimal("1.00")),
        (c, nc, 4, Decimal("2.50")),
    ]
    edits = [m for m in await ledger(db, a, b, c) if m.reason == "sale_edit"]
    assert sorted(
        (m.item_id, m.delta, m.quantity_after, m.reference, m.actor_id) for m in edits
    ) == sorted(
        [
            (a, 2, 9, f"sale:{sale_id}", admin.id),
            (b, 2, 10, f"sale:{sale_id}", admin.id),
            (c, -4, 6, f"sale:{sale_id}", admin.id),
        ]
    )

    view = admin.client.get(f"/api/sales/{sale_id}/edit").json()
    assert view["payment_method"] == "Transferencia"
    assert view["vendor_id"] == seller.id and view["vendedor"] == seller.username
    assert seller.client.get(f"/api/sales/{sale_id}").json()["total"] == 11.0

    events = await outbox_events(db, [sale_id], [c])
    updated = [e for e in events if e["type"] == "sale.updated"]
    assert len(updated) == 1
    assert updated[0]["data"] == {"sale_id": sale_id}
    assert updated[0]["before"] == {
        "vendor_id": seller.id,
        "payment_method": "Efectivo",
        "total": 9.0,
        "items": [
            {"item_id": a, "name": na, "quantity": 3, "unit_price": 1.0, "subtotal": 3.0},
            {"item_id": b, "name": nb, "quantity": 2, "unit_price": 3.0, "subtotal": 6.0},
        ],
    }
    assert updated[0]["after"] == {
        "vendor_id": seller.id,
        "payment_method": "Transferencia",
        "total": 11.0,
        "items": [
            {"item_id": a, "name": na, "quantity": 1, "unit_price": 1.0, "subtotal": 1.0},
            {"item_id": c, "name": nc, "quantity": 4, "unit_price": 2.5, "subtotal": 10.0},
        ],
    }
    low = [e["data"] for e in events if e["type"] == "product.stock_low"]
    assert low == [
        {"item_id": c, "name": nc, "quantity": 6, "min_quantity": 6, "notify_user_id": admin.id}
    ]


async def test_edit_reassigns_the_seller(
    stack: Stack, db: Database, seller: Account, admin: Account
) -> None:
    (a,) = await create_products(db, {"quantity": 10})
    sale_id = sell(seller, (a, 2))
    other = create_account(stack)
    assert put(admin, sale_id, [(a, 2)], vendor_id=other.id).status_code == 200
    view = admin.client.get(f"/api/sales/{sale_id}/edit").json()
    assert (view["vendor_id"], view["vendedor"]) == (other.id, other.username)
    assert await stock(db, a) == [8]  # unchanged lines move no stock
    assert [m.reason for m in await ledger(db, a)] == ["sale"]


async def _snapshot(db: Database, sale_id: int, items: list[int]) -> tuple[Any, ...]:
    async with db.connect() as conn:
        header = tuple(
            (
                await conn.execute(
                    text(
                        "SELECT vendor_id, payment_method, updated_at FROM sales.sales"
                        " WHERE id = :id"
                    ),
                    {"id": sale_id},
                )
            ).one()
        )
    return (
        header,
        [tuple(r) for r in await lines_of(db, sale_id)],
        await stock(db, *items),
        len(await ledger(db, *items)),
    )


async def test_edit_errors_write_nothing(
    stack: Stack, db: Database, seller: Account, admin: Account
) -> None:
    off_name, scarce_name = unique("Off"), unique("Poco")
    a, off, scarce = await create_products(
        db,
        {"quantity": 10},
        {"name": off_name, "status": 0},
        {"name": scarce_name, "quantity": 2},
    )
    sale_id = sell(seller, (a, 2), (scarce, 1))
    disabled = create_account(stack)
    with stack.root() as root:
        assert root.delete(f"/api/users/{disabled.id}").status_code == 200
    before = await _snapshot(db, sale_id, [a, off, scarce])
    missing = 9_000_000_000_000

    assert_error(put(admin, missing, [(a, 1)]), 404, "Venta no encontrada")
    assert_error(admin.client.put(f"/api/sales/{sale_id}", json={}), 400, "Items inválidos")
    assert_error(
        admin.client.put(f"/api/sales/{sale_id}", json={"items": "x"}), 400, "Items inválidos"
    )
    assert_error(put(admin, sale_id, []), 400, "La venta debe tener al menos un producto")
    assert_error(put(admin, sale_id, [(a, 0)]), 400, "item_id/cantidad inválidos en índice 0")
    assert_error(
        put(admin, sale_id, [(a, 1), (missing, 1)]), 400, f"Producto con ID {missing} no encontrado"
    )
    assert_error(
        put(admin, sale_id, [(a, 1), (off, 1)]),
        400,
        f"Los siguientes productos no están disponibles: {off_name}",
    )
    # The sale holds 1 unit and 1 more is in stock: 2 are available to it.
    body = assert_error(put(admin, sale_id, [(a, 2), (scarce, 3)]), 400, "Stock insuficiente")
    assert (body["product"], body["requested"], body["available"]) == (scarce_name, 3, 2)
    for vendor in (None, 0, ""):
        assert_error(
            put(admin, sale_id, [(a, 1)], vendor_id=vendor), 400, "Faltan campos requeridos"
        )
    assert_error(put(admin, sale_id, [(a, 1)], vendor_id="abc"), 400, "Vendedor inválido")
    for vendor in (missing, disabled.id):
        assert_error(
            put(admin, sale_id, [(a, 1)], vendor_id=vendor),
            400,
            "El vendedor no existe o no está activo",
        )
    assert_error(put(admin, sale_id, [(a, 1)], payment_method=""), 400, "Faltan campos requeridos")
    assert_error(
        put(admin, sale_id, [(a, 1)], payment_method="x" * 31), 400, "Método de pago inválido"
    )
    assert await _snapshot(db, sale_id, [a, off, scarce]) == before


async def test_edit_can_shrink_a_line_of_a_disabled_product(
    stack: Stack, db: Database, seller: Account, admin: Account
) -> None:
    name = unique("Retirado")
    (a,) = await create_products(db, {"name": name, "quantity": 10})
    sale_id = sell(seller, (a, 4))
    async with db.transaction() as conn:
        await conn.execute(text("UPDATE products.items SET status = 0 WHERE id = :id"), {"id": a})
    assert put(admin, sale_id, [(a, 1)]).status_code == 200
    assert await stock(db, a) == [9]
    assert_error(
        put(admin, sale_id, [(a, 2)]), 400, f"Los siguientes productos no están disponibles: {name}"
    )


async def test_concurrent_edits_and_sales_keep_stock_consistent(
    stack: Stack, db: Database, admin: Account
) -> None:
    sellers = [create_account(stack) for _ in range(2)]
    items = await create_products(db, *({"quantity": 60} for _ in range(3)))
    sales = [sell(s, (items[0], 1), (items[1], 1)) for s in sellers]
    rng = random.Random(7)

    async def edit(client: httpx.AsyncClient, sale_id: int) -> int:
        lines = [
            {"item_id": i, "quantity": rng.randint(1, 6)}
            for i in rng.sample(items, rng.randint(1, 3))
        ]
        return (await client.put(f"/api/sales/{sale_id}", json={"items": lines})).status_code

    async def buy(client: httpx.AsyncClient) -> int:
        lines = [{"item_id": i, "quantity": rng.randint(1, 4)} for i in items]
        return (await client.post("/api/sales/bulk", json={"items": lines})).status_code

    async with (
        httpx.AsyncClient(
            base_url=stack.base_url, cookies=admin.client.cookies, timeout=60
        ) as a_client,
        httpx.AsyncClient(
            base_url=stack.base_url, cookies=sellers[0].client.cookies, timeout=60
        ) as s_client,
    ):
        codes = await asyncio.gather(
            *(edit(a_client, sales[n % 2]) for n in range(30)),
            *(buy(s_client) for _ in range(15)),
        )
    assert set(codes) <= {200, 201, 400}, codes

    async with db.connect() as conn:
        sold = dict(
            (
                await conn.execute(
                    text(
                        "SELECT item_id, sum(quantity) FROM sales.sale_lines"
                        " WHERE item_id = ANY(:ids) GROUP BY item_id"
                    ),
                    {"ids": items},
                )
            ).all()
        )
    moves = await ledger(db, *items)
    for item, left in zip(items, await stock(db, *items), strict=True):
        units = int(sold.get(item, 0))
        assert left >= 0
        assert left + units == 60
        assert sum(m.delta for m in moves if m.item_id == item) == -units
