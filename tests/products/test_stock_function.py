"""products.apply_stock_movements, called directly as the sales service calls it.

Real PostgreSQL; the concurrency test really races many transactions on a few rows.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.db import Database
from tests.support.stack import unique

APPLY = text(
    "SELECT * FROM products.apply_stock_movements("
    "CAST(:movements AS jsonb), :reason, :reference, :actor_id, :actor_username)"
)


async def make_item(
    conn: AsyncConnection, *, quantity: int, min_quantity: int = 5, status: int = 1
) -> int:
    item_id = await conn.scalar(
        text(
            "INSERT INTO products.items (barcode, name, quantity, min_quantity, price, status)"
            " VALUES (:barcode, :name, :quantity, :min_quantity, 10.50, :status) RETURNING id"
        ),
        {
            "barcode": unique("sf")[:20],
            "name": unique("item")[:25],
            "quantity": quantity,
            "min_quantity": min_quantity,
            "status": status,
        },
    )
    assert isinstance(item_id, int)
    return item_id


async def apply(
    conn: AsyncConnection,
    movements: list[dict[str, Any]],
    reason: str = "sale",
    reference: str | None = "sale:test",
) -> list[Any]:
    result = await conn.execute(
        APPLY,
        {
            "movements": json.dumps(movements),
            "reason": reason,
            "reference": reference,
            "actor_id": 7,
            "actor_username": "tester",
        },
    )
    return list(result)


async def ledger(conn: AsyncConnection, item_ids: list[int]) -> list[Any]:
    result = await conn.execute(
        text(
            "SELECT * FROM products.stock_movements WHERE item_id = ANY(:ids) ORDER BY item_id, id"
        ),
        {"ids": item_ids},
    )
    return list(result)


def diag(exc: DBAPIError) -> tuple[str | None, str | None, str | None]:
    orig: Any = exc.orig
    return orig.sqlstate, orig.diag.message_primary, orig.diag.message_detail


async def test_sums_entries_per_item_and_writes_one_ledger_row_each(conn: AsyncConnection) -> None:
    a = await make_item(conn, quantity=10, min_quantity=5)
    b = await make_item(conn, quantity=3, min_quantity=1)
    rows = await apply(
        conn,
        [{"item_id": b, "delta": -1}, {"item_id": a, "delta": -2}, {"item_id": a, "delta": -3}],
        reference="sale:42",
    )
    assert [row.item_id for row in rows] == sorted([a, b])
    by_id = {row.item_id: row for row in rows}
    assert (by_id[a].quantity_before, by_id[a].quantity_after) == (10, 5)
    assert by_id[a].crossed_low is True  # 10 > 5 → 5 <= 5
    assert (by_id[b].quantity_before, by_id[b].quantity_after) == (3, 2)
    assert by_id[b].crossed_low is False  # still above min 1
    assert by_id[a].price == pytest.approx(10.5)
    assert by_id[a].status == 1 and by_id[a].min_quantity == 5
    stock: dict[int, int] = dict(
        (
            await conn.execute(
                text("SELECT id, quantity FROM products.items WHERE id = ANY(:ids)"),
                {"ids": [a, b]},
            )
        ).all()
    )
    assert stock == {a: 5, b: 2}
    entries = await ledger(conn, [a, b])
    assert [(e.item_id, e.delta, e.quantity_after, e.reason, e.reference) for e in entries] == [
        (a, -5, 5, "sale", "sale:42"),
        (b, -1, 2, "sale", "sale:42"),
    ]
    assert all(e.actor_id == 7 and e.actor_username == "tester" for e in entries)


async def test_crossing_fires_once_and_again_only_after_going_back_above(
    conn: AsyncConnection,
) -> None:
    item = await make_item(conn, quantity=8, min_quantity=5)
    assert (await apply(conn, [{"item_id": item, "delta": -3}]))[0].crossed_low is True
    assert (await apply(conn, [{"item_id": item, "delta": -1}]))[0].crossed_low is False
    assert (await apply(conn, [{"item_id": item, "delta": -4}]))[0].crossed_low is False  # to 0
    assert (await apply(conn, [{"item_id": item, "delta": 6}], "sale_edit"))[0].crossed_low is False
    assert (await apply(conn, [{"item_id": item, "delta": -1}]))[0].crossed_low is True


async def test_disabled_item_changes_stock_but_never_crosses(conn: AsyncConnection) -> None:
    item = await make_item(conn, quantity=8, min_quantity=5, status=0)
    row = (await apply(conn, [{"item_id": item, "delta": -5}]))[0]
    assert (row.quantity_after, row.status, row.crossed_low) == (3, 0, False)


async def test_increment_has_no_upper_limit_for_restores(conn: AsyncConnection) -> None:
    item = await make_item(conn, quantity=10000)
    row = (await apply(conn, [{"item_id": item, "delta": 5}], "sale_edit", "sale:1"))[0]
    assert row.quantity_after == 10005


async def test_zero_net_delta_changes_nothing_and_writes_no_ledger_row(
    conn: AsyncConnection,
) -> None:
    item = await make_item(conn, quantity=4)
    rows = await apply(conn, [{"item_id": item, "delta": -2}, {"item_id": item, "delta": 2}])
    assert (rows[0].quantity_before, rows[0].quantity_after) == (4, 4)
    assert await ledger(conn, [item]) == []


async def test_empty_list_returns_nothing(conn: AsyncConnection) -> None:
    assert await apply(conn, []) == []


async def test_unknown_item_is_sm404_with_the_id(db: Database) -> None:
    async with db.transaction() as conn:
        item = await make_item(conn, quantity=5)
    missing = item + 10_000_000
    with pytest.raises(DBAPIError) as caught:
        async with db.transaction() as conn:
            await apply(conn, [{"item_id": item, "delta": -1}, {"item_id": missing, "delta": -1}])
    assert diag(caught.value) == ("SM404", "item_not_found", str(missing))
    async with db.connect() as conn:
        assert (
            await conn.scalar(
                text("SELECT quantity FROM products.items WHERE id = :id"), {"id": item}
            )
            == 5
        )
        assert await ledger(conn, [item]) == []


async def test_insufficient_stock_is_sm409_with_json_detail(db: Database) -> None:
    async with db.transaction() as conn:
        ok = await make_item(conn, quantity=5)
        short = await make_item(conn, quantity=2)
        name = await conn.scalar(
            text("SELECT name FROM products.items WHERE id = :id"), {"id": short}
        )
    with pytest.raises(DBAPIError) as caught:
        async with db.transaction() as conn:
            await apply(
                conn,
                [
                    {"item_id": ok, "delta": -1},
                    {"item_id": short, "delta": -2},
                    {"item_id": short, "delta": -1},
                ],
            )
    state, message, detail = diag(caught.value)
    assert (state, message) == ("SM409", "insufficient_stock")
    assert json.loads(detail or "") == {
        "item_id": short,
        "name": name,
        "requested": 3,
        "available": 2,
    }
    async with db.connect() as conn:
        stock: dict[int, int] = dict(
            (
                await conn.execute(
                    text("SELECT id, quantity FROM products.items WHERE id = ANY(:ids)"),
                    {"ids": [ok, short]},
                )
            ).all()
        )
        assert stock == {ok: 5, short: 2}
        assert await ledger(conn, [ok, short]) == []


@pytest.mark.parametrize(
    ("movements", "reason", "message"),
    [
        ('{"item_id": 1}', "sale", "invalid_movements"),
        ('[{"item_id": "1", "delta": -1}]', "sale", "invalid_movements"),
        ('[{"item_id": 1, "delta": 1.5}]', "sale", "invalid_movements"),
        ('[{"item_id": 1}]', "sale", "invalid_movements"),
        ('[{"item_id": 1, "delta": 99999999999}]', "sale", "invalid_movements"),
        ("[]", "gift", "invalid_reason"),
    ],
)
async def test_malformed_input_is_rejected(
    db: Database, movements: str, reason: str, message: str
) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with db.transaction() as conn:
            await conn.execute(
                APPLY,
                {
                    "movements": movements,
                    "reason": reason,
                    "reference": None,
                    "actor_id": None,
                    "actor_username": None,
                },
            )
    state, primary, _ = diag(caught.value)
    assert (state, primary) == ("22023", message)


async def test_concurrent_callers_never_oversell_and_ledger_matches_stock(
    migrated: str,
) -> None:
    """200 transactions race over 5 items (multi-item, unordered, some too large)."""
    racing = Database(migrated, pool_size=20, max_overflow=0)
    try:
        async with racing.transaction() as conn:
            items = [await make_item(conn, quantity=40, min_quantity=5) for _ in range(5)]
        rng = random.Random(1234)
        plans = []
        for _ in range(200):
            chosen = rng.sample(items, rng.randint(1, 3))
            plans.append([{"item_id": item, "delta": -rng.randint(1, 4)} for item in chosen])
        outcomes: list[str] = [""] * len(plans)

        async def sell(index: int, movements: list[dict[str, Any]]) -> None:
            try:
                async with racing.transaction() as conn:
                    await apply(conn, movements, reference=f"race:{index}")
                    # Hold the locks a moment so transactions really overlap.
                    await conn.execute(text("SELECT pg_sleep(0.002)"))
            except DBAPIError as exc:
                outcomes[index] = diag(exc)[0] or "?"
            else:
                outcomes[index] = "ok"

        await asyncio.gather(*(sell(index, plan) for index, plan in enumerate(plans)))
        assert set(outcomes) <= {"ok", "SM409"}, outcomes  # never a deadlock (40P01)
        assert outcomes.count("ok") > 0 and outcomes.count("SM409") > 0

        async with racing.connect() as conn:
            stock: dict[int, int] = dict(
                (
                    await conn.execute(
                        text("SELECT id, quantity FROM products.items WHERE id = ANY(:ids)"),
                        {"ids": items},
                    )
                ).all()
            )
            entries = await ledger(conn, items)
        assert all(quantity >= 0 for quantity in stock.values())
        sold = dict.fromkeys(items, 0)
        for plan, outcome in zip(plans, outcomes, strict=True):
            if outcome == "ok":
                for line in plan:
                    sold[line["item_id"]] -= line["delta"]
        for item in items:
            own = [e for e in entries if e.item_id == item]
            assert 40 - sold[item] == stock[item]
            assert 40 + sum(e.delta for e in own) == stock[item]
            running = 40
            for entry in own:  # the ledger replays to the stock, in order
                running += entry.delta
                assert entry.quantity_after == running
        # Failed transactions left no ledger rows: exactly one per (successful sale, item).
        expected_refs = sorted(
            f"race:{index}"
            for index, (plan, outcome) in enumerate(zip(plans, outcomes, strict=True))
            if outcome == "ok"
            for _ in plan
        )
        assert sorted(e.reference for e in entries) == expected_refs
    finally:
        await racing.dispose()
