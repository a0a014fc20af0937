"""Request-time SQL of the metrics service.

Reads the published views only (`products.catalog`, `sales.sale_lines_v`, `sales.sales_v`,
`users.directory`) plus the service's own rollups and memo (`metrics.*`). Aggregation happens in
SQL; the service receives compact rows (per day, per weekday-hour slot, per seller, the top and
forecast products).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.metrics.coverage import NO_COVERAGE, Coverage, DayPlan
from services.metrics.sql import (
    USER,
    Source,
    covered_items,
    covered_sales_rows,
    instant_ranges_sql,
    live_items,
    live_sales_rows,
)
from stockmanager.contracts import stock, users_directory
from stockmanager.timefmt import day_end_exclusive


def install_session_settings(engine: AsyncEngine) -> None:
    """Settings of every new connection of the service: no parallel workers (on 2 cores under
    concurrent requests they only add overhead to these short queries)."""

    async def apply(driver_connection: Any) -> None:
        await driver_connection.execute("SET max_parallel_workers_per_gather = 0")
        await driver_connection.commit()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(apply)

    event.listen(engine.sync_engine, "connect", on_connect)


async def begin_snapshot(conn: AsyncConnection) -> None:
    """Make the connection's next transaction a read-only REPEATABLE READ snapshot (sent with
    its BEGIN: no extra round trip). Call before the first statement."""
    await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


# --- coverage --------------------------------------------------------------------------------

_STATE = text(
    "SELECT timezone, sealed_through, sale_watermark, version"
    " FROM metrics.rollup_state WHERE id = 1"
)
# Days the rollups must not be trusted for: marked dirty by a sale edit, or holding a sale
# inserted since the last refresh with a date they had already sealed. Bound values (not a join
# with the state row) so that the planner sees a short primary-key range. Also the memo entries
# of the current rollup version, so that a request knows without another round trip which of
# the entries it needs exist.
_EXCLUDED_AND_MEMOS = text(
    """
    SELECT 'day' AS kind, day::text AS value FROM (
        SELECT day FROM metrics.dirty_days WHERE day <= :sealed
        UNION
        SELECT (s.sold_at AT TIME ZONE :tz)::date
          FROM sales.sales_v s
         WHERE s.id > :watermark AND s.sold_at < :sealed_end
    ) excluded
    UNION ALL
    SELECT 'memo', cache_key FROM metrics.memo_keys WHERE version = :version
    """
)


async def read_coverage(conn: AsyncConnection, tz: ZoneInfo) -> Coverage:
    """What the rollups cover right now (nothing when they were built for another zone)."""
    state = (await conn.execute(_STATE)).first()
    if state is None or state.sealed_through is None or state.timezone != tz.key:
        return NO_COVERAGE
    rows = await conn.execute(
        _EXCLUDED_AND_MEMOS,
        {
            "sealed": state.sealed_through,
            "tz": tz.key,
            "watermark": state.sale_watermark,
            "sealed_end": day_end_exclusive(state.sealed_through, tz),
            "version": state.version,
        },
    )
    excluded: set[date] = set()
    memo_keys: set[str] = set()
    for kind, value in rows:
        if kind == "day":
            excluded.add(date.fromisoformat(value))
        else:
            memo_keys.add(value)
    return Coverage(
        sealed_through=state.sealed_through,
        excluded=frozenset(excluded),
        version=state.version,
        memo_keys=frozenset(memo_keys),
    )


# --- /api/stats ------------------------------------------------------------------------------

_STATS = text(
    f"""
    SELECT count(*) FILTER (WHERE c.status = 1) AS products,
           count(*) FILTER (WHERE c.status = 1 AND {stock.low_in_stock_sql("c")}) AS low_stock,
           count(*) FILTER (WHERE c.status = 1 AND c.expiration_date <= :expire_by) AS expire_soon,
           coalesce(sum(c.quantity * c.price) FILTER (WHERE c.status = 1), 0) AS inventory_value,
           (SELECT count(*) FROM sales.sales_v s
             WHERE s.sold_at >= :today_start AND s.sold_at < :today_end) AS sales_today,
           (SELECT coalesce(json_agg(json_build_object('id', x.id, 'name', x.name,
                                                       'sku', x.barcode, 'stock', x.quantity)
                                     ORDER BY x.quantity, x.id), '[]'::json)
              FROM (SELECT id, name, barcode, quantity FROM products.catalog
                     WHERE status = 1 AND {stock.low_stock_sql()}
                     ORDER BY quantity, id LIMIT 10) x) AS low_stock_list
      FROM products.catalog c
    """
)


async def stats(
    conn: AsyncConnection, *, expire_by: date, today_start: datetime, today_end: datetime
) -> Row[Any]:
    params = {"expire_by": expire_by, "today_start": today_start, "today_end": today_end}
    return (await conn.execute(_STATS, params)).one()


# --- /api/never-sold -------------------------------------------------------------------------


async def never_sold(
    conn: AsyncConnection, ever: DayPlan, tz: ZoneInfo, memo_key: str | None
) -> Sequence[Row[Any]]:
    """Active products without any sale line. `ever` covers all time up to today: products
    with sales on its covered days are ruled out from the rollups; the few remaining
    candidates are checked against the live lines of every other moment."""
    covered = covered_items(ever, "n", memo_key)
    in_covered, instant_params = instant_ranges_sql("l.sold_at", ever.covered_instants(tz), "ni")
    sql = f"""
        WITH candidates AS MATERIALIZED (
            SELECT c.id, c.name, c.barcode, c.quantity, c.price
              FROM products.catalog c
             WHERE c.status = 1
               AND NOT EXISTS (SELECT 1 FROM ({covered.sql}) s WHERE s.item_id = c.id)
        )
        SELECT c.* FROM candidates c
         WHERE NOT EXISTS (SELECT 1 FROM sales.sale_lines_v l
                            WHERE l.item_id = c.id AND NOT {in_covered})
         ORDER BY c.quantity DESC, c.id
    """
    return (await conn.execute(text(sql), {**covered.params, **instant_params})).all()


# --- /api/metrics ----------------------------------------------------------------------------


async def sales_rows(
    conn: AsyncConnection, plan: DayPlan, tz: ZoneInfo, current_lo: date, memo_key: str | None
) -> Sequence[Row[Any]]:
    """Rows (kind, k, revenue_cents, sales, units, name) of every day of the plan (see sql.py;
    rows of the same kind and k add up), plus one USER row per active user (k = id,
    name = username)."""
    if memo_key is not None:
        covered = Source(
            "SELECT kind, k, revenue_cents, sales, units FROM metrics.sales_sums"
            " WHERE cache_key = :skey",
            {"skey": memo_key},
        )
    else:
        covered = covered_sales_rows(plan, "s")
    live = live_sales_rows(plan, tz, "s")
    sql = f"""
        SELECT c.*, NULL::text AS name FROM ({covered.sql}) c
        UNION ALL
        SELECT l.*, NULL::text FROM ({live.sql}) l
        UNION ALL
        SELECT {USER}::smallint, id, 0, 0, 0, username::text
          FROM users.directory WHERE {users_directory.ACTIVE_SQL}
    """
    params = {**covered.params, **live.params, "current_lo": current_lo}
    return (await conn.execute(text(sql), params)).all()


async def items(
    conn: AsyncConnection, plan: DayPlan, tz: ZoneInfo, days: int, memo_key: str | None
) -> Sequence[Row[Any]]:
    """'top' rows: the 10 products with most units in the window; 'forecast' rows: the 20
    active products sold in the window that run out soonest (zero days remaining first)."""
    covered = covered_items(plan, "i", memo_key)
    live = live_items(plan, tz, "i")
    sql = f"""
        WITH per_item AS (
            SELECT coalesce(c.item_id, v.item_id) AS item_id,
                   coalesce(c.units, 0) + coalesce(v.units, 0) AS units,
                   coalesce(c.revenue_cents, 0) + coalesce(v.revenue_cents, 0) AS cents
              FROM ({covered.sql}) c FULL JOIN ({live.sql}) v ON v.item_id = c.item_id
        )
        (SELECT 'top' AS kind, p.item_id AS id, c.name, c.barcode, p.units,
                p.cents AS revenue_cents, c.quantity, c.min_quantity
           FROM (SELECT * FROM per_item ORDER BY units DESC, cents DESC, item_id LIMIT 10) p
           JOIN products.catalog c ON c.id = p.item_id
          ORDER BY p.units DESC, p.cents DESC, p.item_id)
        UNION ALL
        (SELECT 'forecast', p.item_id, c.name, c.barcode, p.units, p.cents, c.quantity,
                c.min_quantity
           FROM per_item p JOIN products.catalog c ON c.id = p.item_id
          WHERE c.status = 1 AND p.units > 0
          ORDER BY (c.quantity::bigint * :days) / p.units, p.units DESC, p.item_id
          LIMIT 20)
    """
    params = {**covered.params, **live.params, "days": days}
    return (await conn.execute(text(sql), params)).all()


async def inventory(
    conn: AsyncConnection, movement: DayPlan, tz: ZoneInfo, memo_key: str | None
) -> Row[Any]:
    """Stock alerts and inventory totals over active products; `no_movement` counts those
    with no sale line on the days of `movement`."""
    covered = covered_items(movement, "m", memo_key)
    live = live_items(movement, tz, "m")
    # NOT IN over a non-null column: two hashed sub-plans, probed once per product.
    sql = f"""
        SELECT count(*) FILTER (WHERE c.quantity = 0) AS out_of_stock,
               count(*) FILTER (WHERE {stock.low_in_stock_sql("c")}) AS low_stock,
               count(*) FILTER (WHERE c.id NOT IN (SELECT item_id FROM ({covered.sql}) m)
                                  AND c.id NOT IN (SELECT item_id FROM ({live.sql}) v))
                   AS no_movement,
               coalesce(sum(c.quantity * c.price), 0) AS total_value,
               coalesce(sum(c.quantity), 0)::bigint AS total_units
          FROM products.catalog c
         WHERE c.status = 1
    """
    return (await conn.execute(text(sql), {**covered.params, **live.params})).one()


# --- event handling --------------------------------------------------------------------------

_MARK_SALE_DAY_DIRTY = text(
    """
    INSERT INTO metrics.dirty_days (day)
    SELECT (s.sold_at AT TIME ZONE :tz)::date FROM sales.sales_v s WHERE s.id = :sale_id
    ON CONFLICT (day) DO UPDATE
       SET mark = nextval('metrics.dirty_mark_seq'), marked_at = now()
    """
)


async def mark_sale_day_dirty(conn: AsyncConnection, sale_id: int, tz: ZoneInfo) -> None:
    """The business day of a sale changed after it may have been aggregated (a sale edit)."""
    await conn.execute(_MARK_SALE_DAY_DIRTY, {"sale_id": sale_id, "tz": tz.key})
