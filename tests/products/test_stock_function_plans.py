"""The stock functions' work grows linearly with the number of items, whatever the plans.

products_0005 planned its refusal check (`... ORDER BY id LIMIT 1` over a join) as a nested
loop that rescanned the movement list for every item: n² rows for a CSV import's n stock
changes (345 s for 50,000). Instead of timing a call, this counts what the executor did:
auto_explain logs the plan of every statement the function runs, with the rows each node
produced and filtered away (EXPLAIN ANALYZE's counts, no timing), and their sum must stay
within a constant per row of input and table: a hash join may read the whole table, a nested
loop over the movement list for every item may not. On a fresh database products_0005's
function did 8,058,004 such row steps for these 2,000 items, this one 50,005.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.stack import unique

ITEMS = 2000
# Row steps per item moved plus per product in the table, over every plan node of every
# statement of one call: linear plans stay well below it (about 25 per item on a fresh
# database, the foreign key checks included), a quadratic one exceeds it by a factor of ~n/50.
WORK_PER_ROW = 50

_NODE = re.compile(r"actual rows=([\d.]+) loops=(\d+)")
_REMOVED = re.compile(r"Rows Removed by (?:Join )?Filter: ([\d.]+)")


def plan_work(plans: list[str]) -> float:
    """Rows produced plus rows filtered away, over every node of the logged plans. EXPLAIN
    prints both per loop (averaged), so each is multiplied by its node's loops."""
    total = 0.0
    loops = 1
    for plan in plans:
        for line in plan.splitlines():
            if node := _NODE.search(line):
                loops = int(node.group(2))
                total += float(node.group(1)) * loops
            elif removed := _REMOVED.search(line):
                total += float(removed.group(1)) * loops
    return total


async def _log_plans(conn: AsyncConnection) -> list[str]:
    """From now on, the plan of every statement this transaction runs (nested ones too) is
    appended to the returned list."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    plans: list[str] = []
    driver.add_notice_handler(
        lambda diag: (
            plans.append(diag.message_primary or "")
            if diag.severity_nonlocalized == "LOG"
            else None
        )
    )
    try:
        await conn.execute(text("LOAD 'auto_explain'"))
    except DBAPIError as exc:  # a server without the module, or no right to load it
        pytest.skip(f"auto_explain is not available: {exc}")
    for setting, value in (
        ("auto_explain.log_min_duration", "0"),
        ("auto_explain.log_nested_statements", "on"),
        ("auto_explain.log_analyze", "on"),
        ("auto_explain.log_timing", "off"),
        ("client_min_messages", "log"),
    ):
        await conn.execute(text("SELECT set_config(:s, :v, true)"), {"s": setting, "v": value})
    return plans


async def _new_items(conn: AsyncConnection) -> tuple[list[int], int]:
    """ITEMS products just inserted in this transaction (no statistics describe them yet, as
    after an import that created them) and how many products the table holds now."""
    prefix = unique("pl")[:8]
    ids = list(
        (
            await conn.execute(
                text(
                    "INSERT INTO products.items (barcode, name, quantity, min_quantity, price)"
                    " SELECT :prefix || g, 'plan item ' || g, 100, 5, 1"
                    " FROM generate_series(1, :n) AS g RETURNING id"
                ),
                {"prefix": prefix, "n": ITEMS},
            )
        ).scalars()
    )
    catalogue = await conn.scalar(text("SELECT count(*) FROM products.items"))
    assert isinstance(catalogue, int)
    return ids, catalogue


async def _set_plan_cache_mode(conn: AsyncConnection, mode: str) -> None:
    await conn.execute(text("SELECT set_config('plan_cache_mode', :mode, true)"), {"mode": mode})


async def _plan_cache_mode(conn: AsyncConnection) -> str | None:
    return await conn.scalar(text("SELECT current_setting('plan_cache_mode')"))


@pytest.mark.parametrize(
    "plan_cache_mode",
    [
        "force_custom_plan",  # the products service's sessions (services/products/app.py)
        "force_generic_plan",  # a plan made without the values: 10 items assumed
    ],
)
async def test_a_big_call_touches_a_bounded_number_of_rows_per_item(
    conn: AsyncConnection, plan_cache_mode: str
) -> None:
    ids, catalogue = await _new_items(conn)
    await _set_plan_cache_mode(conn, plan_cache_mode)
    plans = await _log_plans(conn)

    rows = (
        await conn.execute(
            text(
                "SELECT * FROM products.apply_stock_movements(CAST(:m AS jsonb), 'import',"
                " 'plans', NULL, NULL)"
            ),
            {"m": json.dumps([{"item_id": item, "delta": 1} for item in ids])},
        )
    ).all()

    assert [row.quantity_after for row in rows] == [101] * ITEMS
    assert any("products.stock_movements" in plan for plan in plans)  # nested plans logged
    assert plan_work(plans) <= WORK_PER_ROW * (ITEMS + catalogue)
    # The function sets its own plan caching for the call only (products_0006).
    assert await _plan_cache_mode(conn) == plan_cache_mode


async def test_recording_initial_stock_touches_a_bounded_number_of_rows_per_item(
    conn: AsyncConnection,
) -> None:
    ids, catalogue = await _new_items(conn)
    await _set_plan_cache_mode(conn, "force_custom_plan")  # as the products service
    plans = await _log_plans(conn)

    written = await conn.scalar(
        text(
            "SELECT products.record_initial_stock(CAST(:ids AS bigint[]), 'import', 'plans',"
            " NULL, NULL)"
        ),
        {"ids": ids},
    )

    assert written == ITEMS
    assert plan_work(plans) <= WORK_PER_ROW * (ITEMS + catalogue)
    assert await _plan_cache_mode(conn) == "force_custom_plan"
