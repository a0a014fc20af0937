"""SQL building blocks shared by the request queries, the memo and the refresher.

Every sales figure is the union of two sources that never overlap: the covered days of a DayPlan
(rollups, or their memoised sums) and a live aggregation of `sales.sale_lines_v` over the other
days, given as UTC instant ranges. Money travels as integer cents.

The sales figures of a report travel as rows (kind, k, revenue_cents, sales, units) of the
kinds below; rows of the same (kind, k) from different sources add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.metrics.coverage import DayPlan, DayRange

Params = dict[str, Any]

# Kinds of sales rows; the current window is the days >= :current_lo, the previous one the rest.
DAY = 0  # k = day - 1970-01-01, current window
SLOT = 1  # k = (ISO weekday - 1) * 24 + hour, current window
PREVIOUS = 2  # k = 0, totals of the previous window
VENDOR = 3  # k = vendor id, current window
VENDOR_PREVIOUS = 4  # k = vendor id, previous window
USER = 5  # k = user id of an active user, with its username (the sellers to list)

LOCAL_DAY = "(l.sold_at AT TIME ZONE :tz)::date"
LOCAL_HOUR = "extract(hour FROM l.sold_at AT TIME ZONE :tz)::smallint"
LINE_CENTS = "(l.quantity * l.unit_price * 100)"


@dataclass(frozen=True, slots=True)
class Source:
    """A subquery with its bind parameters."""

    sql: str
    params: Params


def day_ranges_sql(column: str, ranges: Sequence[DayRange], prefix: str) -> tuple[str, Params]:
    """`column` within any of the inclusive date ranges (`false` when there are none)."""
    if not ranges:
        return "false", {}
    parts: list[str] = []
    params: Params = {}
    for index, (lo, hi) in enumerate(ranges):
        parts.append(f"{column} BETWEEN :{prefix}lo{index} AND :{prefix}hi{index}")
        params[f"{prefix}lo{index}"] = lo
        params[f"{prefix}hi{index}"] = hi
    return "(" + " OR ".join(parts) + ")", params


def instant_ranges_sql(
    column: str, ranges: Sequence[tuple[datetime, datetime]], prefix: str
) -> tuple[str, Params]:
    """`column` within any of the half-open instant ranges (`false` when there are none)."""
    if not ranges:
        return "false", {}
    parts: list[str] = []
    params: Params = {}
    for index, (start, end) in enumerate(ranges):
        parts.append(f"({column} >= :{prefix}s{index} AND {column} < :{prefix}e{index})")
        params[f"{prefix}s{index}"] = start
        params[f"{prefix}e{index}"] = end
    return "(" + " OR ".join(parts) + ")", params


def _sales_kinds(hours: str, vendors: str) -> str:
    """The five kinds of sales rows from two relations (day, hour|vendor_id, revenue_cents,
    sales, units); :current_lo splits the current from the previous window."""
    sums = "sum(revenue_cents)::bigint, sum(sales)::bigint, sum(units)::bigint"
    return f"""
        SELECT {DAY}::smallint AS kind, (day - DATE '1970-01-01')::bigint AS k,
               sum(revenue_cents)::bigint AS revenue_cents, sum(sales)::bigint AS sales,
               sum(units)::bigint AS units
          FROM {hours} WHERE day >= :current_lo GROUP BY day
        UNION ALL
        SELECT {SLOT}, ((extract(isodow FROM day)::int - 1) * 24 + hour)::bigint, {sums}
          FROM {hours} WHERE day >= :current_lo GROUP BY 2
        UNION ALL
        SELECT {PREVIOUS}, 0, {sums} FROM {hours} WHERE day < :current_lo HAVING count(*) > 0
        UNION ALL
        SELECT {VENDOR}, vendor_id, {sums} FROM {vendors} WHERE day >= :current_lo
         GROUP BY vendor_id
        UNION ALL
        SELECT {VENDOR_PREVIOUS}, vendor_id, {sums} FROM {vendors} WHERE day < :current_lo
         GROUP BY vendor_id
    """


def covered_sales_rows(plan: DayPlan, prefix: str) -> Source:
    """Sales rows of the plan's covered days, from the rollups."""
    covered, params = day_ranges_sql("day", plan.covered, f"{prefix}c")
    sql = f"""
        WITH h AS (SELECT day, hour, revenue_cents, sales, units
                     FROM metrics.sales_day_hour WHERE {covered}),
             v AS (SELECT day, vendor_id, revenue_cents, sales, units
                     FROM metrics.sales_day_vendor WHERE {covered})
        {_sales_kinds("h", "v")}
    """
    return Source(sql, params)


def live_sales_rows(plan: DayPlan, tz: ZoneInfo, prefix: str) -> Source:
    """Sales rows of the plan's live days, from the sales view (lines summed per sale first, so
    counting sales needs no DISTINCT)."""
    live, params = instant_ranges_sql("l.sold_at", plan.live_instants(tz), f"{prefix}l")
    sql = f"""
        WITH lv AS (
            SELECT (sold_at AT TIME ZONE :tz)::date AS day,
                   extract(hour FROM sold_at AT TIME ZONE :tz)::int AS hour, vendor_id,
                   cents AS revenue_cents, 1 AS sales, units
              FROM (SELECT l.sale_id, l.sold_at, l.vendor_id,
                           sum({LINE_CENTS})::bigint AS cents, sum(l.quantity)::bigint AS units
                      FROM sales.sale_lines_v l WHERE {live}
                     GROUP BY l.sale_id, l.sold_at, l.vendor_id) per_sale
        )
        {_sales_kinds("lv", "lv")}
    """
    return Source(sql, {**params, "tz": tz.key})


def covered_items(plan: DayPlan, prefix: str, memo_key: str | None) -> Source:
    """One row per product (item_id, units, revenue_cents) over the plan's covered days: the
    memoised sums when `memo_key` is given, else whole months plus single days of the rollups."""
    if memo_key is not None:
        return Source(
            f"SELECT item_id, units, revenue_cents FROM metrics.item_sums"
            f" WHERE cache_key = :{prefix}key",
            {f"{prefix}key": memo_key},
        )
    months, days = plan.split_months()
    covered, params = day_ranges_sql("day", days, f"{prefix}c")
    sql = f"""
        SELECT item_id, sum(units)::bigint AS units, sum(revenue_cents)::bigint AS revenue_cents
          FROM (SELECT item_id, units, revenue_cents FROM metrics.sales_month_item
                 WHERE month = ANY (CAST(:{prefix}months AS date[]))
                UNION ALL
                SELECT item_id, units, revenue_cents FROM metrics.sales_day_item
                 WHERE {covered}) u
         GROUP BY item_id
    """
    return Source(sql, {**params, f"{prefix}months": months})


def live_items(plan: DayPlan, tz: ZoneInfo, prefix: str) -> Source:
    """One row per product (item_id, units, revenue_cents) over the plan's live days."""
    live, params = instant_ranges_sql("l.sold_at", plan.live_instants(tz), f"{prefix}l")
    sql = f"""
        SELECT l.item_id, sum(l.quantity)::bigint AS units,
               sum({LINE_CENTS})::bigint AS revenue_cents
          FROM sales.sale_lines_v l WHERE {live}
         GROUP BY l.item_id
    """
    return Source(sql, params)
