"""Request-time SQL of the metrics service.

Reads the published views only (`products.catalog`, `sales.sale_lines_v`, `sales.sales_v`,
`users.directory`) plus the service's own rollups and item-sums memo (`metrics.*`). Aggregation
happens in SQL; the service receives compact rows (per day, per weekday-hour slot, per vendor,
the top and forecast products).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics.coverage import NO_COVERAGE, Coverage, DayPlan
from services.metrics.sql import (
    SALE_HOUR,
    covered_item_source,
    instant_ranges_sql,
    item_source,
    per_day_source,
)
from stockmanager.timefmt import day_end_exclusive

# One consistent snapshot per request; no parallel workers (on 2 cores under concurrent
# requests they only add overhead).
_BEGIN_SNAPSHOT = (
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
    " SET LOCAL max_parallel_workers_per_gather = 0"
)


async def begin_snapshot(conn: AsyncConnection) -> None:
    """Make the connection's (just begun) transaction a read-only REPEATABLE READ snapshot."""
    await conn.execute(text(_BEGIN_SNAPSHOT))


# --- coverage --------------------------------------------------------------------------------

_STATE = text(
    "SELECT timezone, sealed_through, sale_watermark, version"
    " FROM metrics.rollup_state WHERE id = 1"
)
# Days of sales inserted since the last refresh with a date the rollups had already sealed.
# Bound values (not a join with the state row) so that the planner sees a short key range.
_BACKDATED = text(
    """
    SELECT DISTINCT (s.sold_at AT TIME ZONE :tz)::date
      FROM sales.sales_v s
     WHERE s.id > :watermark AND s.sold_at < :sealed_end
    """
)


async def read_coverage(conn: AsyncConnection, tz: ZoneInfo) -> Coverage:
    """What the rollups cover right now (nothing when they were built for another zone)."""
    state = (await conn.execute(_STATE)).first()
    if state is None or state.sealed_through is None or state.timezone != tz.key:
        return NO_COVERAGE
    dirty = await conn.scalars(
        text("SELECT day FROM metrics.dirty_days WHERE day <= :sealed"),
        {"sealed": state.sealed_through},
    )
    backdated = await conn.scalars(
        _BACKDATED,
        {
            "tz": tz.key,
            "watermark": state.sale_watermark,
            "sealed_end": day_end_exclusive(state.sealed_through, tz),
        },
    )
    return Coverage(
        sealed_through=state.sealed_through,
        excluded=frozenset(dirty) | frozenset(backdated),
        version=state.version,
    )


# --- /api/stats ------------------------------------------------------------------------------

_STATS = text(
    """
    SELECT count(*) FILTER (WHERE c.status = 1) AS products,
           count(*) FILTER (WHERE c.status = 1 AND c.quantity > 0
                              AND c.quantity <= c.min_quantity) AS low_stock,
           count(*) FILTER (WHERE c.status = 1 AND c.expiration_date <= :expire_by) AS expire_soon,
           coalesce(sum(c.quantity * c.price) FILTER (WHERE c.status = 1), 0) AS inventory_value,
           (SELECT count(*) FROM sales.sales_v s
             WHERE s.sold_at >= :today_start AND s.sold_at < :today_end) AS sales_today,
           (SELECT coalesce(json_agg(json_build_object('id', x.id, 'name', x.name,
                                                       'sku', x.barcode, 'stock', x.quantity)
                                     ORDER BY x.quantity, x.id), '[]'::json)
              FROM (SELECT id, name, barcode, quantity FROM products.catalog
                     WHERE status = 1 AND quantity <= min_quantity
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
    conn: AsyncConnection, ever: DayPlan, tz: ZoneInfo, cache_key: str | None
) -> Sequence[Row[Any]]:
    """Active products without any sale line. `ever` covers all time up to today: products
    with sales on its covered days are ruled out from the rollups; the few remaining
    candidates are checked against the live lines of every other moment."""
    covered = covered_item_source(ever, "n", cache_key)
    covered_instants = [(lo, hi) for lo, hi in ever.covered_instants(tz)]
    in_covered, instant_params = instant_ranges_sql("l.sold_at", covered_instants, "ni")
    sql = f"""
        WITH sold AS (SELECT DISTINCT item_id FROM ({covered.sql}) u),
        candidates AS MATERIALIZED (
            SELECT c.id, c.name, c.barcode, c.quantity, c.price
              FROM products.catalog c
             WHERE c.status = 1 AND NOT EXISTS (SELECT 1 FROM sold s WHERE s.item_id = c.id)
        )
        SELECT c.* FROM candidates c
         WHERE NOT EXISTS (SELECT 1 FROM sales.sale_lines_v l
                            WHERE l.item_id = c.id AND NOT {in_covered})
         ORDER BY c.quantity DESC, c.id
    """
    return (await conn.execute(text(sql), {**covered.params, **instant_params})).all()


# --- /api/metrics ----------------------------------------------------------------------------


async def sales_by_day_and_slot(
    conn: AsyncConnection, plan: DayPlan, tz: ZoneInfo, current_lo: date
) -> Sequence[Row[Any]]:
    """Over plan's days: one 'day' row per day >= current_lo with sales, one 'previous' row
    (totals before current_lo) and one 'slot' row per weekday-hour (isodow-1)*24+hour."""
    source = per_day_source(
        plan, tz, table="sales_day_hour", key="hour", live_key=SALE_HOUR, prefix="h"
    )
    sql = f"""
        WITH u AS ({source.sql})
        SELECT 'day' AS kind, day, NULL::int AS slot, sum(revenue_cents)::bigint AS revenue_cents,
               sum(sales)::bigint AS sales, sum(units)::bigint AS units
          FROM u WHERE day >= :current_lo GROUP BY day
        UNION ALL
        SELECT 'previous', NULL, NULL, coalesce(sum(revenue_cents), 0)::bigint,
               coalesce(sum(sales), 0)::bigint, coalesce(sum(units), 0)::bigint
          FROM u WHERE day < :current_lo
        UNION ALL
        SELECT 'slot', NULL, ((extract(isodow FROM day)::int - 1) * 24 + hour)::int,
               sum(revenue_cents)::bigint, sum(sales)::bigint, sum(units)::bigint
          FROM u WHERE day >= :current_lo GROUP BY 3
    """
    result = await conn.execute(text(sql), {**source.params, "current_lo": current_lo})
    return result.all()


async def vendors(
    conn: AsyncConnection, plan: DayPlan, tz: ZoneInfo, current_lo: date
) -> Sequence[Row[Any]]:
    """Every active user with their figures in the current window (days >= current_lo) and in
    the previous one (days < current_lo), by current revenue descending."""
    source = per_day_source(
        plan, tz, table="sales_day_vendor", key="vendor_id", live_key="vendor_id", prefix="v"
    )
    sql = f"""
        WITH u AS ({source.sql}),
        per_vendor AS (
            SELECT vendor_id,
                   sum(revenue_cents) FILTER (WHERE day >= :current_lo) AS revenue_cents,
                   sum(sales) FILTER (WHERE day >= :current_lo) AS sales,
                   sum(units) FILTER (WHERE day >= :current_lo) AS units,
                   sum(revenue_cents) FILTER (WHERE day < :current_lo) AS prev_revenue_cents,
                   sum(sales) FILTER (WHERE day < :current_lo) AS prev_sales
              FROM u GROUP BY vendor_id
        )
        SELECT d.id, d.username,
               coalesce(v.revenue_cents, 0)::bigint AS revenue_cents,
               coalesce(v.sales, 0)::bigint AS sales,
               coalesce(v.units, 0)::bigint AS units,
               coalesce(v.prev_revenue_cents, 0)::bigint AS prev_revenue_cents,
               coalesce(v.prev_sales, 0)::bigint AS prev_sales
          FROM users.directory d
          LEFT JOIN per_vendor v ON v.vendor_id = d.id
         WHERE d.status = 1
         ORDER BY coalesce(v.revenue_cents, 0) DESC, d.id
    """
    result = await conn.execute(text(sql), {**source.params, "current_lo": current_lo})
    return result.all()


async def items(
    conn: AsyncConnection, plan: DayPlan, tz: ZoneInfo, days: int, cache_key: str | None
) -> Sequence[Row[Any]]:
    """'top' rows: the 10 products with most units in the window; 'forecast' rows: the 20
    active products sold in the window that run out soonest (zero days remaining first)."""
    source = item_source(plan, tz, "i", cache_key)
    sql = f"""
        WITH per_item AS (
            SELECT item_id, sum(units)::bigint AS units, sum(revenue_cents)::bigint AS cents
              FROM ({source.sql}) u
             GROUP BY item_id
        )
        (SELECT 'top' AS kind, p.item_id AS id, c.name, c.barcode, p.units,
                p.cents AS revenue_cents, c.quantity, c.min_quantity
           FROM per_item p JOIN products.catalog c ON c.id = p.item_id
          ORDER BY p.units DESC, p.cents DESC, p.item_id
          LIMIT 10)
        UNION ALL
        (SELECT 'forecast', p.item_id, c.name, c.barcode, p.units, p.cents, c.quantity,
                c.min_quantity
           FROM per_item p JOIN products.catalog c ON c.id = p.item_id
          WHERE c.status = 1 AND p.units > 0
          ORDER BY (c.quantity::bigint * :days) / p.units, p.units DESC, p.item_id
          LIMIT 20)
    """
    result = await conn.execute(text(sql), {**source.params, "tz": tz.key, "days": days})
    return result.all()


async def inventory(
    conn: AsyncConnection, movement: DayPlan, tz: ZoneInfo, cache_key: str | None
) -> Row[Any]:
    """Stock alerts and inventory totals over active products; `no_movement` counts those
    with no sale line on the days of `movement`."""
    source = item_source(movement, tz, "m", cache_key)
    sql = f"""
        WITH moved AS (SELECT DISTINCT item_id FROM ({source.sql}) u)
        SELECT count(*) FILTER (WHERE c.quantity = 0) AS out_of_stock,
               count(*) FILTER (WHERE c.quantity > 0 AND c.quantity <= c.min_quantity)
                   AS low_stock,
               count(*) FILTER (WHERE m.item_id IS NULL) AS no_movement,
               coalesce(sum(c.quantity * c.price), 0) AS total_value,
               coalesce(sum(c.quantity), 0)::bigint AS total_units
          FROM products.catalog c
          LEFT JOIN moved m ON m.item_id = c.id
         WHERE c.status = 1
    """
    return (await conn.execute(text(sql), {**source.params, "tz": tz.key})).one()


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
