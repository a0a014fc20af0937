"""products.record_initial_stock: the ledger's first rows for products inserted with their stock
(the CSV import's creates), and its refusal to touch an item whose stock is already recorded."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.products.test_stock_function import apply, diag, ledger, make_item

RECORD = text(
    "SELECT products.record_initial_stock(CAST(:ids AS bigint[]), :reason, :reference,"
    " :actor_id, :actor_username)"
)


async def record(conn: AsyncConnection, ids: list[int], reason: str = "import") -> Any:
    params = {
        "ids": ids,
        "reason": reason,
        "reference": "request:r1",
        "actor_id": 7,
        "actor_username": "tester",
    }
    return await conn.scalar(RECORD, params)


async def test_records_the_stock_each_new_item_was_inserted_with(conn: AsyncConnection) -> None:
    stocked = await make_item(conn, quantity=12)
    other = await make_item(conn, quantity=3)
    empty = await make_item(conn, quantity=0)
    assert await record(conn, [other, empty, stocked]) == 2
    entries = await ledger(conn, [stocked, other, empty])
    assert [
        (e.item_id, e.delta, e.quantity_after, e.reason, e.reference, e.actor_id, e.actor_username)
        for e in entries
    ] == [
        (stocked, 12, 12, "import", "request:r1", 7, "tester"),
        (other, 3, 3, "import", "request:r1", 7, "tester"),
    ]
    # The ledger explains the stock, and later changes go on from it as usual.
    (row,) = await apply(conn, [{"item_id": stocked, "delta": -2}])
    assert (row.quantity_before, row.quantity_after) == (12, 10)


async def test_refuses_an_item_whose_stock_is_already_recorded(conn: AsyncConnection) -> None:
    fresh = await make_item(conn, quantity=4)
    moved = await make_item(conn, quantity=5)
    await apply(conn, [{"item_id": moved, "delta": 1}], "bulk_stock")
    with pytest.raises(DBAPIError) as raised:
        await record(conn, [fresh, moved])
    assert diag(raised.value) == ("22023", "stock_already_recorded", str(moved))


async def test_refuses_an_unknown_reason(conn: AsyncConnection) -> None:
    item = await make_item(conn, quantity=4)
    with pytest.raises(DBAPIError) as raised:
        await record(conn, [item], reason="gift")
    assert diag(raised.value) == ("22023", "invalid_reason", "gift")
