"""The stock function's client (stockmanager.contracts.stock) on both drivers, real PostgreSQL.

Every test works in a transaction rolled back at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.contracts import stock
from stockmanager.contracts.stock import (
    InsufficientStock,
    ProductsUnavailable,
    StockChange,
    StockMovements,
    UnknownProduct,
)
from stockmanager.db import Database
from tests.support.stack import unique

Conn = AsyncConnection | psycopg.AsyncConnection[Any]


def libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


@pytest_asyncio.fixture
async def sa_conn(db: Database) -> AsyncIterator[AsyncConnection]:
    async with db.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest_asyncio.fixture
async def pg_conn(migrated: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    connection = await psycopg.AsyncConnection.connect(libpq(migrated))
    try:
        yield connection  # psycopg opens a transaction on the first statement
        await connection.rollback()
    finally:
        await connection.close()


@pytest.fixture(params=["sqlalchemy", "psycopg"])
def conn(request: pytest.FixtureRequest) -> Conn:
    """The same test on each driver the contract supports."""
    fixture = "sa_conn" if request.param == "sqlalchemy" else "pg_conn"
    connection: Conn = request.getfixturevalue(fixture)
    return connection


async def fetch(conn: Conn, sql: str, params: dict[str, Any]) -> list[Any]:
    if isinstance(conn, AsyncConnection):
        return list((await conn.execute(text(sql), params)).all())
    named = sql
    for name in params:
        named = named.replace(f":{name}", f"%({name})s")
    return list(await (await conn.execute(named, params)).fetchall())


async def make_item(conn: Conn, *, quantity: int, min_quantity: int = 5, status: int = 1) -> int:
    [(item_id,)] = await fetch(
        conn,
        "INSERT INTO products.items (barcode, name, quantity, min_quantity, price, status)"
        " VALUES (:barcode, :name, :quantity, :min_quantity, 2.50, :status) RETURNING id",
        {
            "barcode": unique("cs")[:20],
            "name": unique("item")[:25],
            "quantity": quantity,
            "min_quantity": min_quantity,
            "status": status,
        },
    )
    return int(item_id)


def movements(deltas: dict[int, int], reason: stock.StockReason = "sale") -> StockMovements:
    return StockMovements(
        deltas, reason=reason, reference="sale:77", actor_id=9, actor_username="contract"
    )


async def test_applies_deltas_and_returns_typed_rows(conn: Conn) -> None:
    a = await make_item(conn, quantity=10, min_quantity=5)
    b = await make_item(conn, quantity=3, min_quantity=1)
    changes = await stock.apply_stock_movements(conn, movements({b: -1, a: -5}))
    assert sorted(changes) == sorted([a, b])
    assert changes[a] == StockChange(
        item_id=a,
        name=changes[a].name,
        price=Decimal("2.50"),
        quantity_before=10,
        quantity_after=5,
        min_quantity=5,
        status=1,
    )
    assert changes[a].crossed_low and not changes[b].crossed_low
    ledger = await fetch(
        conn,
        "SELECT item_id, delta, quantity_after, reason, reference, actor_id, actor_username"
        " FROM products.stock_movements WHERE item_id IN (:a, :b) ORDER BY item_id",
        {"a": a, "b": b},
    )
    assert [tuple(row) for row in ledger] == sorted(
        [(a, -5, 5, "sale", "sale:77", 9, "contract"), (b, -1, 2, "sale", "sale:77", 9, "contract")]
    )


async def test_nothing_to_move_makes_no_call(conn: Conn) -> None:
    assert await stock.apply_stock_movements(conn, movements({})) == {}


async def test_every_contract_reason_is_accepted_by_the_function(conn: Conn) -> None:
    item = await make_item(conn, quantity=1)
    for reason in stock.REASONS:
        changes = await stock.apply_stock_movements(conn, movements({item: 0}, reason))
        assert changes[item].quantity_after == 1


async def test_long_reference_is_cut_to_the_ledger_column(conn: Conn) -> None:
    item = await make_item(conn, quantity=1)
    request = StockMovements(
        {item: 1}, reason="product_update", reference="r" * 300, actor_id=None, actor_username=None
    )
    await stock.apply_stock_movements(conn, request)
    [(reference,)] = await fetch(
        conn, "SELECT reference FROM products.stock_movements WHERE item_id = :i", {"i": item}
    )
    assert reference == "r" * stock.REFERENCE_MAX


async def test_unknown_item_is_refused_as_the_api_answers_it(conn: Conn) -> None:
    item = await make_item(conn, quantity=5)
    missing = item + 10_000_000
    with pytest.raises(UnknownProduct) as caught:
        await stock.apply_stock_movements(conn, movements({item: -1, missing: -1}))
    refusal = caught.value
    assert refusal.item_id == missing
    assert refusal.status == 400
    assert refusal.body() == {
        "error": f"Producto con ID {missing} no encontrado",
        "code": "validation_error",
    }


async def test_insufficient_stock_is_refused_with_upstreams_body(conn: Conn) -> None:
    ok = await make_item(conn, quantity=5)
    short = await make_item(conn, quantity=2)
    with pytest.raises(InsufficientStock) as caught:
        await stock.apply_stock_movements(conn, movements({ok: -1, short: -3}))
    refusal = caught.value
    assert (refusal.item_id, refusal.requested, refusal.available) == (short, 3, 2)
    assert refusal.status == 400
    assert refusal.body() == {
        "error": "Stock insuficiente",
        "code": "insufficient_stock",
        "product": refusal.name,
        "requested": 3,
        "available": 2,
    }
    # An edit shows the quantity its line asks for and counts what the sale already holds.
    seen = refusal.as_seen_by({short: 7}, {short: 4})
    assert seen.body() == {**refusal.body(), "requested": 7, "available": 6}


async def test_other_database_errors_are_not_refusals(conn: Conn) -> None:
    with pytest.raises(Exception) as caught:
        await stock.apply_stock_movements(conn, movements({1: 2**40}))  # delta out of int range
    assert not isinstance(caught.value, stock.StockRefused)
    assert stock.refusal(caught.value) is None


@pytest.mark.parametrize(
    ("quantity", "min_quantity", "status", "delta"),
    [
        (10, 5, 1, -5),  # onto the minimum: crosses
        (10, 5, 1, -4),  # still above
        (6, 5, 1, -6),  # straight to zero: crosses
        (5, 5, 1, -1),  # already low: no second notice
        (3, 5, 1, 4),  # back above
        (10, 5, 0, -8),  # disabled: never
        (0, 0, 1, 0),  # at a zero minimum, nothing moves
        (1, 0, 1, -1),  # a zero minimum is crossed at zero
    ],
)
async def test_the_functions_crossed_low_column_follows_the_contract_rule(
    sa_conn: AsyncConnection, quantity: int, min_quantity: int, status: int, delta: int
) -> None:
    """products restates the rule in SQL (its `crossed_low` column); both must agree."""
    item = await make_item(sa_conn, quantity=quantity, min_quantity=min_quantity, status=status)
    sql = f"SELECT {stock.COLUMNS}, crossed_low FROM {stock.call_sql('sqlalchemy')}"
    [row] = (await sa_conn.execute(text(sql), stock.call_params(movements({item: delta})))).all()
    change = stock.changes_from([row[:-1]])[item]
    assert change.crossed_low is row[-1]


def test_crossed_low_compares_each_side_with_its_own_minimum() -> None:
    # A PUT that raises the minimum above the unchanged stock crosses; lowering it does not.
    assert stock.crossed_low(
        active=True, quantity_before=8, min_before=5, quantity_after=8, min_after=10
    )
    assert not stock.crossed_low(
        active=True, quantity_before=8, min_before=10, quantity_after=8, min_after=5
    )
    assert not stock.crossed_low(
        active=False, quantity_before=8, min_before=5, quantity_after=2, min_after=5
    )
    assert stock.is_low(0, 0) and stock.is_low(5, 5) and not stock.is_low(6, 5)


class Row:
    def __init__(self, name: str, status: int, quantity: int = 0, min_quantity: int = 0) -> None:
        self.name, self.status = name, status
        self.quantity, self.min_quantity = quantity, min_quantity


def test_product_crossed_low_reads_two_states_of_a_row() -> None:
    assert stock.product_crossed_low(Row("a", 1, 6, 5), Row("a", 1, 5, 5))
    assert not stock.product_crossed_low(Row("a", 1, 6, 5), Row("a", 0, 5, 5))


def test_availability_checks_name_unknown_first_then_every_disabled_product() -> None:
    rows = {1: Row("uno", 1), 2: Row("dos", 0), 3: Row("tres", 0)}
    with pytest.raises(UnknownProduct) as unknown:
        stock.require_known_active([3, 9, 8], rows)
    assert unknown.value.message == "Producto con ID 9 no encontrado"
    with pytest.raises(ProductsUnavailable) as unavailable:
        stock.require_known_active([3, 1, 2], rows)
    assert unavailable.value.body() == {
        "error": "Los siguientes productos no están disponibles: tres, dos",
        "code": "product_unavailable",
    }
    stock.require_active([1, 9], rows)  # unknown ids are not this check's business
    stock.require_known_active([1], rows)


async def test_the_sql_conditions_are_the_python_rule(sa_conn: AsyncConnection) -> None:
    levels = [(0, 0), (0, 5), (3, 5), (5, 5), (6, 5), (1, 0)]
    ids = {await make_item(sa_conn, quantity=q, min_quantity=m): (q, m) for q, m in levels}

    async def matching(condition: str) -> set[int]:
        rows = await sa_conn.execute(
            text(f"SELECT c.id FROM products.catalog c WHERE c.id = ANY(:ids) AND {condition}"),
            {"ids": list(ids)},
        )
        return set(rows.scalars())

    low = {item for item, (q, m) in ids.items() if stock.is_low(q, m)}
    assert await matching(stock.low_stock_sql("c")) == low
    assert await matching(stock.low_in_stock_sql("c")) == {i for i in low if ids[i][0] > 0}
    assert len(low) == 4  # the cases cover both sides of both conditions
