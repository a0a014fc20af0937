"""Rules of the metrics service: which days, which figures, how they combine. Never commits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics import item_cache, repository, schemas
from services.metrics.coverage import Coverage, DayPlan, plan_days
from services.metrics.formulas import (
    WEEKDAY_LONG,
    day_labels,
    first_max_index,
    money,
    moving_average,
    pct_change,
    round2,
    trend_sentence,
)
from services.metrics.window import Window
from stockmanager.timefmt import day_end_exclusive, day_start

EXPIRY_HORIZON_DAYS = 7
NO_MOVEMENT_DAYS = 30
# Start of "all time" for never-sold: older sales are simply never covered by the rollups,
# so they are still found (live).
EPOCH = date(1970, 1, 1)


async def get_stats(conn: AsyncConnection, tz: ZoneInfo, today: date) -> dict[str, Any]:
    row = await repository.stats(
        conn,
        expire_by=today + timedelta(days=EXPIRY_HORIZON_DAYS),
        today_start=day_start(today, tz),
        today_end=day_end_exclusive(today, tz),
    )
    return schemas.stats_response(row)


async def begin_snapshot(conn: AsyncConnection) -> None:
    await repository.begin_snapshot(conn)


RunReport = Callable[[AsyncConnection], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A report ready to run: the item-sums memo entries it reads, and how to run it."""

    version: int
    memos: dict[str, DayPlan]
    run: RunReport


def _memo(plan: DayPlan, coverage: Coverage, use_memo: bool) -> str | None:
    return item_cache.cache_key(plan, coverage.version) if use_memo else None


async def missing_memos(conn: AsyncConnection, prepared: Prepared) -> dict[str, DayPlan]:
    missing = await item_cache.missing_keys(conn, prepared.memos)
    return {key: plan for key, plan in prepared.memos.items() if key in missing}


async def fill_memos(conn: AsyncConnection, memos: dict[str, DayPlan], version: int) -> None:
    for key, plan in memos.items():
        await item_cache.fill(conn, key, plan, version)


async def prepare_never_sold(
    conn: AsyncConnection, tz: ZoneInfo, today: date, *, use_memo: bool = True
) -> Prepared:
    coverage = await repository.read_coverage(conn, tz)
    ever = plan_days(EPOCH, today, coverage)
    key = _memo(ever, coverage, use_memo)

    async def run(conn: AsyncConnection) -> dict[str, Any]:
        rows = await repository.never_sold(conn, ever, tz, key)
        return {"products": [schemas.never_sold_entry(row) for row in rows]}

    return Prepared(coverage.version, {key: ever} if key else {}, run)


async def prepare_metrics(
    conn: AsyncConnection, window: Window, tz: ZoneInfo, today: date, *, use_memo: bool = True
) -> Prepared:
    coverage = await repository.read_coverage(conn, tz)
    previous = window.previous
    # The current and the previous windows are adjacent: one pass over both.
    sales_plan = plan_days(previous.start, window.end, coverage)
    items_plan = plan_days(window.start, window.end, coverage)
    movement = plan_days(today - timedelta(days=NO_MOVEMENT_DAYS), today, coverage)
    items_key = _memo(items_plan, coverage, use_memo)
    movement_key = _memo(movement, coverage, use_memo)
    memos = {
        key: plan
        for key, plan in ((items_key, items_plan), (movement_key, movement))
        if key is not None
    }

    async def run(conn: AsyncConnection) -> dict[str, Any]:
        day_rows = await repository.sales_by_day_and_slot(conn, sales_plan, tz, window.start)
        vendor_rows = await repository.vendors(conn, sales_plan, tz, window.start)
        item_rows = await repository.items(conn, items_plan, tz, window.days, items_key)
        stock = await repository.inventory(conn, movement, tz, movement_key)
        return build_metrics(window, day_rows, vendor_rows, item_rows, stock)

    return Prepared(coverage.version, memos, run)


def build_metrics(
    window: Window,
    day_rows: Sequence[Any],
    vendor_rows: Sequence[Any],
    item_rows: Sequence[Any],
    stock: Any,
) -> dict[str, Any]:
    per_day: dict[date, Any] = {}
    heat = [[0] * 24 for _ in range(7)]
    weekday_cents = [0] * 7
    previous_row = None
    for row in day_rows:
        if row.kind == "day":
            per_day[row.day] = row
        elif row.kind == "slot":
            weekday, hour = divmod(row.slot, 24)
            heat[weekday][hour] += int(row.sales)
            weekday_cents[weekday] += int(row.revenue_cents)
        else:
            previous_row = row

    cents = sum(int(row.revenue_cents) for row in per_day.values())
    sales = sum(int(row.sales) for row in per_day.values())
    units = sum(int(row.units) for row in per_day.values())
    prev_cents = int(previous_row.revenue_cents) if previous_row is not None else 0
    prev_sales = int(previous_row.sales) if previous_row is not None else 0
    prev_units = int(previous_row.units) if previous_row is not None else 0

    revenue, prev_revenue = money(cents), money(prev_cents)
    ticket = round2(revenue / sales) if sales else Decimal(0)
    prev_ticket = round2(prev_revenue / prev_sales) if prev_sales else Decimal(0)
    revenue_change = pct_change(revenue, prev_revenue)

    days = window.each_day()
    labels = day_labels(days)
    daily_revenue = [
        money(int(per_day[d].revenue_cents)) if d in per_day else Decimal(0) for d in days
    ]
    by_weekday = [sum(hours) for hours in heat]
    by_hour = [sum(heat[weekday][hour] for weekday in range(7)) for hour in range(24)]

    top = [schemas.top_product_entry(row) for row in item_rows if row.kind == "top"]
    forecast = [
        schemas.forecast_entry(row, window.days) for row in item_rows if row.kind == "forecast"
    ]
    best_index = first_max_index(by_weekday)
    peak_hour = first_max_index(by_hour)

    return {
        "kpis": {
            "revenue": revenue,
            "totalSales": sales,
            "avgTicket": ticket,
            "unitsSold": units,
            "revenueChange": revenue_change,
            "salesChange": pct_change(sales, prev_sales),
            "ticketChange": pct_change(ticket, prev_ticket),
            "unitsChange": pct_change(units, prev_units),
        },
        "salesOverTime": {
            "labels": labels,
            "revenue": [float(value) for value in daily_revenue],
            "sales": [int(per_day[d].sales) if d in per_day else 0 for d in days],
        },
        "topProducts": top,
        "salesByWeekday": by_weekday,
        "salesByHour": by_hour,
        "comparison": {"current": revenue, "previous": prev_revenue},
        "alerts": {
            "outOfStock": stock.out_of_stock,
            "lowStock": stock.low_stock,
            "noMovement": stock.no_movement,
        },
        "insights": {
            "bestDay": None
            if best_index is None
            else {
                "name": WEEKDAY_LONG[best_index],
                "revenue": money(weekday_cents[best_index]),
            },
            "peakHour": peak_hour,
            "topProduct": {"name": top[0]["name"], "units": top[0]["units"]} if top else None,
            "trend": trend_sentence(revenue_change, prev_revenue),
        },
        "vendors": [schemas.vendor_entry(row) for row in vendor_rows],
        "period": schemas.period_entry(window.start, window.end, window.days),
        "inventory": {
            "totalValue": round2(Decimal(stock.total_value)),
            "totalUnits": int(stock.total_units),
        },
        "trendLine": {"labels": labels, "values": moving_average(daily_revenue, window.days)},
        "heatmap": schemas.heatmap_entry(heat),
        "inventoryForecast": forecast,
        "criticalStocks": [entry for entry in forecast if entry["status"] == "danger"],
    }
