"""POST /api/sales/bulk and POST /api/sales through the gateway: bodies, errors, side effects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from stockmanager.db import Database
from tests.sales.support import (
    Account,
    assert_error,
    create_products,
    ledger,
    lines_of,
    outbox_events,
    sales_of,
    stock,
)
from tests.support.stack import Stack, unique


async def test_bulk_sale_records_everything_in_one_go(
    stack: Stack, db: Database, seller: Account
) -> None:
    milk, bread = unique("Leche"), unique("Pan")
    a, b = await create_products(
        db,
        {"name": milk, "price": "1.10", "quantity": 10, "min_quantity": 3},
        {"name": bread, "price": "2.25", "quantity": 5, "min_quantity": 1},
    )
    response = seller.client.post(
        "/api/sales/bulk",
        json={
            "items": [
                {"item_id": a, "quantity": 3},
                {"item_id": b, "quantity": 1},
                {"item_id": a, "quantity": 4},  # duplicates are summed into one line
            ],
            "payment_method": "  Tarjeta ",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    sale_id = body["sale_id"]
    assert isinstance(sale_id, int)
    assert body == {
        "ok": True,
        "sale_id": sale_id,
        "items": [
            {"item_id": a, "name": milk, "quantity": 7, "unit_price": 1.1, "subtotal": 7.7},
            {"item_id": b, "name": bread, "quantity": 1, "unit_price": 2.25, "subtotal": 2.25},
        ],
        "total": 9.95,
    }
    assert await stock(db, a, b) == [3, 4]
    assert [tuple(row) for row in await lines_of(db, sale_id)] == [
        (a, milk, 7, Decimal("1.10")),
        (b, bread, 1, Decimal("2.25")),
    ]
    moves = await ledger(db, a, b)
    assert [
        (m.item_id, m.delta, m.quantity_after, m.reason, m.reference, m.actor_id) for m in moves
    ] == [
        (a, -7, 3, "sale", f"sale:{sale_id}", seller.id),
        (b, -1, 4, "sale", f"sale:{sale_id}", seller.id),
    ]

    events = await outbox_events(db, [sale_id], [a, b])
    created = [e for e in events if e["type"] == "sale.created"]
    low = [e for e in events if e["type"] == "product.stock_low"]
    assert len(created) == 1 and len(events) == 2
    payload = {
        "sale_id": sale_id,
        "vendor_id": seller.id,
        "vendor_username": seller.username,
        "payment_method": "Tarjeta",
        "total": 9.95,
        "items": body["items"],
    }
    assert created[0]["data"] == payload and created[0]["after"] == payload
    assert created[0]["entity"] == {"type": "sale", "id": sale_id}
    assert created[0]["actor"] == {"id": seller.id, "username": seller.username, "role": "vendedor"}
    # Milk went from 10 (above its minimum of 3) to 3: it crossed into low stock; bread did not.
    assert [e["data"] for e in low] == [
        {"item_id": a, "name": milk, "quantity": 3, "min_quantity": 3, "notify_user_id": seller.id}
    ]
    assert low[0]["entity"] == {"type": "product", "id": a}


async def test_bulk_sale_default_payment_method_and_sale_visible(
    stack: Stack, db: Database, seller: Account
) -> None:
    (a,) = await create_products(db, {"price": "0.10", "quantity": 5})
    body = seller.client.post(
        "/api/sales/bulk", json={"items": [{"item_id": a, "quantity": "3"}]}
    ).json()
    assert body["total"] == 0.3 and body["items"][0]["subtotal"] == 0.3
    detail = seller.client.get(f"/api/sales/{body['sale_id']}").json()
    assert detail["payment_method"] == "Efectivo"
    assert detail["vendedor"] == seller.username and detail["vendor_id"] == seller.id


async def _nothing_written(
    db: Database, seller: Account, items: list[int], before: tuple[list[int], list[int], int]
) -> None:
    stock_before, sales_before, ledger_before = before
    assert await stock(db, *items) == stock_before
    assert await sales_of(db, seller.id) == sales_before
    assert len(await ledger(db, *items)) == ledger_before


async def _snapshot(
    db: Database, seller: Account, items: list[int]
) -> tuple[list[int], list[int], int]:
    return await stock(db, *items), await sales_of(db, seller.id), len(await ledger(db, *items))


BAD_LINES: list[tuple[Any, str]] = [
    (None, "Formato inválido: items[] requerido"),
    ([], "Formato inválido: items[] requerido"),
    ("x", "Formato inválido: items[] requerido"),
    ({"item_id": 1}, "Formato inválido: items[] requerido"),
    (["a"], "item_id/cantidad inválidos en índice 0"),
    ([{"item_id": "ok"}], "item_id/cantidad inválidos en índice 0"),
]


@pytest.mark.parametrize(("items", "message"), BAD_LINES)
async def test_bulk_sale_malformed_items(
    stack: Stack, seller: Account, items: Any, message: str
) -> None:
    payload = {} if items is None else {"items": items}
    assert_error(seller.client.post("/api/sales/bulk", json=payload), 400, message)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "abc", True, None, "", 2_147_483_648])
async def test_bulk_sale_quantity_must_be_a_positive_integer(
    stack: Stack, db: Database, seller: Account, quantity: Any
) -> None:
    a, b = await create_products(db, {"quantity": 5}, {"quantity": 5})
    before = await _snapshot(db, seller, [a, b])
    response = seller.client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": a, "quantity": 1}, {"item_id": b, "quantity": quantity}]},
    )
    assert_error(response, 400, "item_id/cantidad inválidos en índice 1")
    await _nothing_written(db, seller, [a, b], before)


async def test_bulk_sale_unknown_product_is_400(
    stack: Stack, db: Database, seller: Account
) -> None:
    (a,) = await create_products(db, {"quantity": 5})
    before = await _snapshot(db, seller, [a])
    missing = 9_000_000_000_000
    response = seller.client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": a, "quantity": 1}, {"item_id": missing, "quantity": 1}]},
    )
    assert_error(response, 400, f"Producto con ID {missing} no encontrado")
    await _nothing_written(db, seller, [a], before)


async def test_bulk_sale_lists_every_disabled_product(
    stack: Stack, db: Database, seller: Account
) -> None:
    first, second = unique("Off"), unique("Off")
    ok, off1, off2 = await create_products(
        db, {"quantity": 5}, {"name": first, "status": 0}, {"name": second, "status": 0}
    )
    before = await _snapshot(db, seller, [ok, off1, off2])
    response = seller.client.post(
        "/api/sales/bulk",
        json={
            "items": [
                {"item_id": off1, "quantity": 1},
                {"item_id": ok, "quantity": 1},
                {"item_id": off2, "quantity": 1},
            ]
        },
    )
    body = assert_error(
        response, 400, f"Los siguientes productos no están disponibles: {first}, {second}"
    )
    assert body["code"] == "product_unavailable"
    await _nothing_written(db, seller, [ok, off1, off2], before)


async def test_bulk_sale_refusals_follow_the_order_asked(
    stack: Stack, db: Database, seller: Account
) -> None:
    # An unknown product wins over a disabled one, and the first unknown is the first asked
    # (not the smallest id); disabled products are named in the order asked, not by id.
    first, second = unique("Off"), unique("Off")
    off1, off2 = await create_products(
        db, {"name": first, "status": 0}, {"name": second, "status": 0}
    )
    before = await _snapshot(db, seller, [off1, off2])
    high, low = 9_000_000_000_002, 9_000_000_000_001
    unknown = seller.client.post(
        "/api/sales/bulk",
        json={
            "items": [
                {"item_id": off1, "quantity": 1},
                {"item_id": high, "quantity": 1},
                {"item_id": low, "quantity": 1},
            ]
        },
    )
    assert_error(unknown, 400, f"Producto con ID {high} no encontrado")
    disabled = seller.client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": off2, "quantity": 1}, {"item_id": off1, "quantity": 1}]},
    )
    assert_error(disabled, 400, f"Los siguientes productos no están disponibles: {second}, {first}")
    await _nothing_written(db, seller, [off1, off2], before)


async def test_bulk_sale_insufficient_stock_counts_duplicates(
    stack: Stack, db: Database, seller: Account
) -> None:
    name = unique("Escaso")
    plenty, scarce = await create_products(db, {"quantity": 50}, {"name": name, "quantity": 5})
    before = await _snapshot(db, seller, [plenty, scarce])
    response = seller.client.post(
        "/api/sales/bulk",
        json={
            "items": [
                {"item_id": plenty, "quantity": 2},
                {"item_id": scarce, "quantity": 3},
                {"item_id": scarce, "quantity": 3},
            ]
        },
    )
    body = assert_error(response, 400, "Stock insuficiente")
    assert body == {
        "error": "Stock insuficiente",
        "code": "insufficient_stock",
        "product": name,
        "requested": 6,
        "available": 5,
    }
    await _nothing_written(db, seller, [plenty, scarce], before)


@pytest.mark.parametrize("method", ["", "   ", 5, "x" * 31, ["Efectivo"]])
async def test_bulk_sale_invalid_payment_method(
    stack: Stack, db: Database, seller: Account, method: Any
) -> None:
    (a,) = await create_products(db, {"quantity": 5})
    before = await _snapshot(db, seller, [a])
    response = seller.client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": a, "quantity": 1}], "payment_method": method},
    )
    assert_error(response, 400, "Método de pago inválido")
    await _nothing_written(db, seller, [a], before)


async def test_bulk_sale_body_must_be_a_json_object(stack: Stack, seller: Account) -> None:
    response = seller.client.post(
        "/api/sales/bulk", content=b"[1]", headers={"content-type": "application/json"}
    )
    assert_error(response, 400)
    response = seller.client.post(
        "/api/sales/bulk", content=b"{bad", headers={"content-type": "application/json"}
    )
    assert_error(response, 400)


# ------------------------------------------------------------------------- by barcode


async def test_sale_by_barcode(stack: Stack, db: Database, seller: Account) -> None:
    name, barcode = unique("Cafe"), unique("")[:12]
    (a,) = await create_products(
        db, {"name": name, "barcode": barcode, "price": "3.35", "quantity": 4, "min_quantity": 2}
    )
    response = seller.client.post(
        "/api/sales", json={"barcode": barcode, "quantity": 2, "payment_method": "Débito"}
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "message": f"Venta registrada: {name} x2",
        "product": name,
        "quantity": 2,
        "total": 6.7,
    }
    assert await stock(db, a) == [2]
    (sale_id,) = [
        s
        for s in await sales_of(db, seller.id)
        if [tuple(x)[:3] for x in await lines_of(db, s)] == [(a, name, 2)]
    ]
    detail = seller.client.get(f"/api/sales/{sale_id}").json()
    assert detail["payment_method"] == "Débito" and detail["total"] == 6.7
    types = [e["type"] for e in await outbox_events(db, [sale_id], [a])]
    assert types == ["sale.created", "product.stock_low"]


async def test_sale_by_barcode_errors_write_nothing(
    stack: Stack, db: Database, seller: Account
) -> None:
    barcode, off_barcode, off_name = unique("")[:12], unique("")[:12], unique("Off")
    a, off = await create_products(
        db,
        {"barcode": barcode, "quantity": 3},
        {"barcode": off_barcode, "name": off_name, "quantity": 3, "status": 0},
    )
    before = await _snapshot(db, seller, [a, off])
    post = seller.client.post
    assert_error(post("/api/sales", json={"quantity": 1}), 400, "Faltan campos requeridos")
    assert_error(post("/api/sales", json={"barcode": barcode}), 400, "Faltan campos requeridos")
    for quantity in ("x", 0, -2, 1.25, None):
        assert_error(
            post("/api/sales", json={"barcode": barcode, "quantity": quantity}),
            400,
            "Cantidad inválida",
        )
    assert_error(
        post("/api/sales", json={"barcode": "0000000000000000001", "quantity": 1}),
        404,
        "Producto no encontrado",
    )
    assert_error(
        post("/api/sales", json={"barcode": off_barcode, "quantity": 1}),
        400,
        f"Los siguientes productos no están disponibles: {off_name}",
    )
    body = assert_error(
        post("/api/sales", json={"barcode": barcode, "quantity": 4}), 400, "Stock insuficiente"
    )
    assert (body["requested"], body["available"]) == (4, 3)
    assert_error(
        post("/api/sales", json={"barcode": barcode, "quantity": 1, "payment_method": ""}),
        400,
        "Método de pago inválido",
    )
    await _nothing_written(db, seller, [a, off], before)


async def test_sales_need_a_session(stack: Stack, db: Database) -> None:
    (a,) = await create_products(db, {"quantity": 3})
    with stack.client() as anonymous:
        for path, payload in (
            ("/api/sales/bulk", {"items": [{"item_id": a, "quantity": 1}]}),
            ("/api/sales", {"barcode": "1", "quantity": 1}),
        ):
            assert_error(anonymous.post(path, json=payload), 401, "No autenticado")
    assert await stock(db, a) == [3]


def test_service_refuses_unsigned_requests(stack: Stack) -> None:
    url = stack.service_urls["sales"][0]
    response = httpx.post(
        f"{url}/api/sales/bulk",
        json={"items": [{"item_id": 1, "quantity": 1}]},
        headers={"X-StockManager-Identity": "forged.deadbeef"},
    )
    assert_error(response, 401, "No autenticado")


async def test_sales_survive_dropped_database_connections(
    stack: Stack, db: Database, seller: Account
) -> None:
    """A PostgreSQL restart (here: every checkout connection killed) costs no failed sale."""
    (a,) = await create_products(db, {"quantity": 10})
    assert (
        seller.client.post(
            "/api/sales/bulk", json={"items": [{"item_id": a, "quantity": 1}]}
        ).status_code
        == 201
    )
    async with db.transaction() as conn:
        killed = list(
            await conn.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = 'sales-checkout'")
            )
        )
        # With a timeout pg_terminate_backend waits until the backend has exited (sockets
        # closed, FATAL sent), as after a restart. Without one it only signals, and a sale sent
        # in the instant before the exit meets a connection dying under its statement: a 503
        # with Retry-After, which no check before the statement can prevent (and retrying it
        # blindly could sell twice).
        terminated = await conn.scalars(
            text("SELECT pg_terminate_backend(pid, 5000) FROM unnest(CAST(:pids AS int[])) pid"),
            {"pids": killed},
        )
        assert killed and all(terminated)
    for _ in range(3):
        response = seller.client.post(
            "/api/sales/bulk", json={"items": [{"item_id": a, "quantity": 1}]}
        )
        assert response.status_code == 201, response.text
    assert await stock(db, a) == [6]
