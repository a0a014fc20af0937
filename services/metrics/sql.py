"""SQL building blocks shared by the request queries, the item-sums memo and the refresher.

Every sales figure is the union of two sources that never overlap: rollup rows for the covered
days of a DayPlan and a live aggregation of `sales.sale_lines_v` over the rest, given as UTC
instant ranges. Money travels as integer cents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.metrics.coverage import DayPlan, DayRange

Params = dict[str, Any]

LOCAL_DAY = "(l.sold_at AT TIME ZONE :tz)::date"
LOCAL_HOUR = "extract(hour FROM l.sold_at AT TIME ZONE :tz)::smallint"
LINE_CENTS = "(l.quantity * l.unit_price * 100)"
SALE_HOUR = "extract(hour FROM sold_at AT TIME ZONE :tz)::smallint"


@dataclass(frozen=True, slots=True)
class Source:
    """A subquery (UNION ALL of rollup and live rows) with its bind parameters."""

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


def per_day_source(
    plan: DayPlan, tz: ZoneInfo, *, table: str, key: str, live_key: str, prefix: str
) -> Source:
    """Rows (day, <key>, revenue_cents, sales, units) from rollup `table` plus live rows.

    `live_key` is computed from a per-sale row (columns sold_at, vendor_id): lines are summed
    per sale first, so counting sales needs no DISTINCT."""
    covered, covered_params = day_ranges_sql("day", plan.covered, f"{prefix}c")
    live, live_params = instant_ranges_sql("l.sold_at", plan.live_instants(tz), f"{prefix}l")
    sql = f"""
        SELECT day, {key}, revenue_cents, sales::bigint AS sales, units
          FROM metrics.{table} WHERE {covered}
        UNION ALL
        SELECT (sold_at AT TIME ZONE :tz)::date, {live_key}, sum(cents)::bigint, count(*),
               sum(units)::bigint
          FROM (SELECT l.sale_id, l.sold_at, l.vendor_id, sum({LINE_CENTS}) AS cents,
                       sum(l.quantity) AS units
                  FROM sales.sale_lines_v l WHERE {live}
                 GROUP BY l.sale_id, l.sold_at, l.vendor_id) per_sale
         GROUP BY 1, 2
    """
    return Source(sql, {**covered_params, **live_params, "tz": tz.key})


def covered_item_source(plan: DayPlan, prefix: str, cache_key: str | None) -> Source:
    """Rows (item_id, units, revenue_cents) of the plan's covered days: from the item-sums
    memo when `cache_key` is given, else whole months plus single days of the rollups."""
    if cache_key is not None:
        return Source(
            f"SELECT item_id, units, revenue_cents FROM metrics.item_sums"
            f" WHERE cache_key = :{prefix}key",
            {f"{prefix}key": cache_key},
        )
    months, days = plan.split_months()
    covered, covered_params = day_ranges_sql("day", days, f"{prefix}c")
    sql = f"""
        SELECT item_id, units, revenue_cents FROM metrics.sales_month_item
         WHERE month = ANY (CAST(:{prefix}months AS date[]))
        UNION ALL
        SELECT item_id, units, revenue_cents FROM metrics.sales_day_item WHERE {covered}
    """
    return Source(sql, {**covered_params, f"{prefix}months": months})


def item_source(plan: DayPlan, tz: ZoneInfo, prefix: str, cache_key: str | None) -> Source:
    """Rows (item_id, units, revenue_cents) of every day of the plan: covered plus live."""
    covered = covered_item_source(plan, prefix, cache_key)
    live, live_params = instant_ranges_sql("l.sold_at", plan.live_instants(tz), f"{prefix}l")
    sql = f"""
        {covered.sql}
        UNION ALL
        SELECT l.item_id, l.quantity::bigint, {LINE_CENTS}::bigint
          FROM sales.sale_lines_v l WHERE {live}
    """
    return Source(sql, {**covered.params, **live_params})
