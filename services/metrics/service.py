"""Rules of the metrics service: which days, which figures, how they combine. Never commits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics import memo, repository, schemas, sql
from services.metrics.coverage import Coverage, plan_days
from services.metrics.formulas import (
    WEEKDAY_LONG,
    day_labels,
    first_max_index,
    money,
    moving_average,
    pct_change,
    trend_sentence,
)
from services.metrics.window import Window
from stockmanager.contracts.fields import money as round2
from stockmanager.timefmt import day_end_exclusive, day_start

EXPIRY_HORIZON_DAYS = 7
NO_MOVEMENT_DAYS = 30
# Start of "all time" for never-sold: older sales are simply never covered by the rollups,
# so they are still found (live).
ALL_TIME_START = date(1970, 1, 1)
DAY_ZERO = date(1970, 1, 1)  # day numbers of the sales rows (sql.DAY) count from here


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
    """A report ready to run: the memo entries it reads, those not stored yet, how to run it."""

    version: int
    memos: list[memo.MemoEntry]
    missing: list[memo.MemoEntry]
    run: RunReport

    @classmethod
    def of(cls, coverage: Coverage, memos: list[memo.MemoEntry], run: RunReport) -> Prepared:
        missing = [entry for entry in memos if entry.key not in coverage.memo_keys]
        return cls(coverage.version, memos, missing, run)


async def fill_memos(conn: AsyncConnection, entries: list[memo.MemoEntry], version: int) -> None:
    for entry in entries:
        await memo.fill(conn, entry, version)


def _memo_entries(*entries: memo.MemoEntry | None) -> list[memo.MemoEntry]:
    return [entry for entry in entries if entry is not None]


def _key(entry: memo.MemoEntry | None) -> str | None:
    return entry.key if entry is not None else None


async def prepare_never_sold(
    conn: AsyncConnection, tz: ZoneInfo, today: date, *, use_memo: bool = True
) -> Prepared:
    coverage = await repository.read_coverage(conn, tz)
    ever = plan_days(ALL_TIME_START, today, coverage)
    ever_memo = memo.entry("items", ever, coverage.version) if use_memo else None

    async def run(conn: AsyncConnection) -> dict[str, Any]:
        rows = await repository.never_sold(conn, ever, tz, _key(ever_memo))
        return {"products": [schemas.never_sold_entry(row) for row in rows]}

    return Prepared.of(coverage, _memo_entries(ever_memo), run)


async def prepare_metrics(
    conn: AsyncConnection, window: Window, tz: ZoneInfo, today: date, *, use_memo: bool = True
) -> Prepared:
    coverage = await repository.read_coverage(conn, tz)
    # The current and the previous windows are adjacent: one pass over both.
    sales_plan = plan_days(window.previous.start, window.end, coverage)
    items_plan = plan_days(window.start, window.end, coverage)
    movement = plan_days(today - timedelta(days=NO_MOVEMENT_DAYS), today, coverage)
    sales_memo = items_memo = movement_memo = None
    if use_memo:
        sales_memo = memo.entry("sales", sales_plan, coverage.version, window.start)
        items_memo = memo.entry("items", items_plan, coverage.version)
        movement_memo = memo.entry("items", movement, coverage.version)

    async def run(conn: AsyncConnection) -> dict[str, Any]:
        rows = await repository.sales_rows(conn, sales_plan, tz, window.start, _key(sales_memo))
        item_rows = await repository.items(conn, items_plan, tz, window.days, _key(items_memo))
        stock = await repository.inventory(conn, movement, tz, _key(movement_memo))
        return build_metrics(window, SalesFigures.from_rows(rows), item_rows, stock)

    return Prepared.of(coverage, _memo_entries(sales_memo, items_memo, movement_memo), run)


@dataclass(slots=True)
class Sums:
    revenue_cents: int = 0
    sales: int = 0
    units: int = 0

    def add(self, revenue_cents: int, sales: int, units: int) -> None:
        self.revenue_cents += revenue_cents
        self.sales += sales
        self.units += units


@dataclass(slots=True)
class SalesFigures:
    """The sales rows of a report (sql.py kinds), added up."""

    days: dict[date, Sums] = field(default_factory=dict)
    slots: dict[int, Sums] = field(default_factory=dict)
    previous: Sums = field(default_factory=Sums)
    vendors: dict[int, Sums] = field(default_factory=dict)
    vendors_previous: dict[int, Sums] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)  # active users: id -> username

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> SalesFigures:
        figures = cls()
        for row in rows:
            values = (int(row.revenue_cents), int(row.sales), int(row.units))
            kind, k = row.kind, int(row.k)
            if kind == sql.DAY:
                figures.days.setdefault(DAY_ZERO + timedelta(days=k), Sums()).add(*values)
            elif kind == sql.SLOT:
                figures.slots.setdefault(k, Sums()).add(*values)
            elif kind == sql.PREVIOUS:
                figures.previous.add(*values)
            elif kind == sql.VENDOR:
                figures.vendors.setdefault(k, Sums()).add(*values)
            elif kind == sql.VENDOR_PREVIOUS:
                figures.vendors_previous.setdefault(k, Sums()).add(*values)
            elif kind == sql.USER:
                figures.users[k] = row.name
        return figures


def build_metrics(
    window: Window, figures: SalesFigures, item_rows: Sequence[Any], stock: Any
) -> dict[str, Any]:
    heat = [[0] * 24 for _ in range(7)]
    weekday_cents = [0] * 7
    for slot, sums in figures.slots.items():
        weekday, hour = divmod(slot, 24)
        heat[weekday][hour] += sums.sales
        weekday_cents[weekday] += sums.revenue_cents

    totals = Sums()
    for sums in figures.days.values():
        totals.add(sums.revenue_cents, sums.sales, sums.units)
    previous = figures.previous
    revenue, prev_revenue = money(totals.revenue_cents), money(previous.revenue_cents)
    ticket = round2(revenue / totals.sales) if totals.sales else Decimal(0)
    prev_ticket = round2(prev_revenue / previous.sales) if previous.sales else Decimal(0)
    revenue_change = pct_change(revenue, prev_revenue)

    days = window.each_day()
    labels = day_labels(days)
    empty = Sums()
    daily = [figures.days.get(day, empty) for day in days]
    daily_revenue = [money(sums.revenue_cents) for sums in daily]
    by_weekday = [sum(hours) for hours in heat]
    by_hour = [sum(heat[weekday][hour] for weekday in range(7)) for hour in range(24)]

    top = [schemas.top_product_entry(row) for row in item_rows if row.kind == "top"]
    forecast = [
        schemas.forecast_entry(row, window.days) for row in item_rows if row.kind == "forecast"
    ]
    vendors = sorted(
        (
            schemas.vendor_entry(
                user_id,
                username,
                figures.vendors.get(user_id, empty),
                figures.vendors_previous.get(user_id, empty),
            )
            for user_id, username in figures.users.items()
        ),
        key=lambda entry: (-entry["revenue"], entry["id"]),
    )
    best_index = first_max_index(by_weekday)
    peak_hour = first_max_index(by_hour)

    return {
        "kpis": {
            "revenue": revenue,
            "totalSales": totals.sales,
            "avgTicket": ticket,
            "unitsSold": totals.units,
            "revenueChange": revenue_change,
            "salesChange": pct_change(totals.sales, previous.sales),
            "ticketChange": pct_change(ticket, prev_ticket),
            "unitsChange": pct_change(totals.units, previous.units),
        },
        "salesOverTime": {
            "labels": labels,
            "revenue": [float(value) for value in daily_revenue],
            "sales": [sums.sales for sums in daily],
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
        "vendors": vendors,
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
