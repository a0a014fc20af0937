"""The rollup refresher: per-day aggregates of the sales of closed business days.

Why: `/api/metrics?period=365` compares a year with the year before, i.e. every sale line of two
years (1M lines in the benchmark data set). Aggregating them live takes seconds; reading the
per-day rollups takes milliseconds. The rollups never make an answer stale, because requests
only use *covered* days (coverage.py) and read everything else live:

- a day is sealed (aggregated) only `metrics_seal_grace` seconds after it ended, so a sale whose
  transaction started before midnight has committed by then; today is always live;
- a sale inserted later with a date in a sealed day (a back-dated insert: imports, the bench
  seeder, tests) has an id above the watermark, so requests see its day as uncovered and read
  it live until the next pass re-aggregates it;
- a sale edit of a sealed day arrives as a `sale.updated` event that marks the day dirty
  (events.py); requests read dirty days live until the next pass re-aggregates them.

Each pass runs under a session advisory lock (one refresher at a time across replicas) and
commits in small REPEATABLE READ transactions: first the reconciliation of changed sealed days,
then the sealing of new days, `metrics_seal_chunk_days` at a time. All SQL of the rollups is here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics.coverage import ONE_DAY, DayRange, merge_ranges, next_month
from services.metrics.memo import purge as purge_memo
from services.metrics.settings import MetricsSettings
from services.metrics.sql import (
    LINE_CENTS,
    LOCAL_DAY,
    LOCAL_HOUR,
    day_ranges_sql,
    instant_ranges_sql,
)
from stockmanager.db import Database
from stockmanager.timefmt import day_end_exclusive, day_start, now_utc

log = logging.getLogger("stockmanager.metrics.rollups")

REFRESH_LOCK_KEY = 7_403_551_304  # arbitrary constant: "metrics rollup refresher"
ROLLUP_DAY_TABLES = ("sales_day_hour", "sales_day_vendor", "sales_day_item")


@dataclass(slots=True)
class RefreshReport:
    redone_days: int = 0
    reopened_from: date | None = None
    sealed_days: int = 0
    sealed_through: date | None = None


def seal_target(now: datetime, tz: ZoneInfo, grace_seconds: float) -> date:
    """The last business day that ended at least `grace_seconds` ago."""
    return (now - timedelta(seconds=grace_seconds)).astimezone(tz).date() - ONE_DAY


async def refresh(
    db: Database, settings: MetricsSettings, *, now: datetime | None = None
) -> RefreshReport | None:
    """One refresher pass. None when another process is refreshing right now."""
    tz = settings.tz
    target = seal_target(now or now_utc(), tz, settings.metrics_seal_grace)
    async with db.engine.connect() as conn:
        locked = await conn.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": REFRESH_LOCK_KEY}
        )
        await conn.commit()
        if not locked:
            return None
        try:
            report = RefreshReport()
            max_sale_id, settled = await _settled_max_sale_id(conn, settings.metrics_settle_timeout)
            if not settled:
                # Correct either way; only slower: sales above the watermark are re-checked.
                log.warning(
                    "a long transaction keeps the sale-id watermark from advancing",
                    extra={"max_sale_id": max_sale_id},
                )
            await _snapshot(
                conn,
                lambda c: _reconcile(c, tz, settings, report, max_sale_id if settled else None),
            )
            chunk = settings.metrics_seal_chunk_days
            while await _snapshot(conn, lambda c: _seal_next(c, tz, target, chunk, report)):
                pass
            await _snapshot(conn, purge_memo)
            return report
        finally:
            await conn.rollback()
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": REFRESH_LOCK_KEY})
            await conn.commit()


async def _settled_max_sale_id(conn: AsyncConnection, wait_seconds: float) -> tuple[int, bool]:
    """The largest committed sale id M, and whether every smaller id is final by now.

    Sale ids come from a sequence, so an id below M may still belong to a transaction that was
    running when M was read. Once every transaction running at that moment has ended (the
    oldest running transaction is younger than that snapshot's xmax), every id <= M is either
    committed or gone for good, and the next snapshot sees all of them.
    """
    row = (
        await conn.execute(
            text(
                "SELECT coalesce(max(id), 0) AS max_id,"
                " pg_snapshot_xmax(pg_current_snapshot())::text AS xmax FROM sales.sales_v"
            )
        )
    ).one()
    await conn.commit()
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        settled = await conn.scalar(
            text("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= CAST(:xmax AS xid8)"),
            {"xmax": row.xmax},
        )
        await conn.commit()
        if settled or asyncio.get_running_loop().time() >= deadline:
            return int(row.max_id), bool(settled)
        await asyncio.sleep(0.05)


async def reset(conn: AsyncConnection) -> None:
    """Forget every rollup (the next pass rebuilds them); for bulk loads that bypass the API."""
    await _delete_all(conn)
    await conn.execute(
        text(
            """
            UPDATE metrics.rollup_state
               SET sealed_through = NULL, sale_watermark = 0, version = version + 1,
                   refreshed_at = now()
            """
        )
    )


async def _snapshot(conn: AsyncConnection, work: Any) -> Any:
    """Run `work(conn)` in one REPEATABLE READ transaction and commit it."""
    try:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        result = await work(conn)
        await conn.commit()
        return result
    except BaseException:
        await conn.rollback()
        raise


# --- the two steps of a pass -----------------------------------------------------------------


async def _load_state(conn: AsyncConnection, tz: ZoneInfo) -> Any:
    await conn.execute(
        text(
            "INSERT INTO metrics.rollup_state (id, timezone) VALUES (1, :tz)"
            " ON CONFLICT (id) DO NOTHING"
        ),
        {"tz": tz.key},
    )
    state = (
        await conn.execute(text("SELECT * FROM metrics.rollup_state WHERE id = 1 FOR UPDATE"))
    ).one()
    if state.timezone != tz.key:
        # Days are business days of one zone; another zone means other days.
        log.info("business time zone changed: rollups rebuilt", extra={"timezone": tz.key})
        await _delete_all(conn)
        await conn.execute(
            text(
                """
                UPDATE metrics.rollup_state
                   SET timezone = :tz, sealed_through = NULL, sale_watermark = 0,
                       version = version + 1
                """
            ),
            {"tz": tz.key},
        )
        state = (await conn.execute(text("SELECT * FROM metrics.rollup_state"))).one()
    return state


async def _reconcile(
    conn: AsyncConnection,
    tz: ZoneInfo,
    settings: MetricsSettings,
    report: RefreshReport,
    new_watermark: int | None,
) -> None:
    """Redo the sealed days that changed since the last pass; advance the watermark to
    `new_watermark` (None: keep it, some transaction from before is still running)."""
    state = await _load_state(conn, tz)
    marks = (await conn.execute(text("SELECT day, mark FROM metrics.dirty_days"))).all()
    sealed: date | None = state.sealed_through
    changed: set[date] = set()
    if sealed is not None:
        backdated = await conn.scalars(
            text(
                """
                SELECT DISTINCT (s.sold_at AT TIME ZONE :tz)::date FROM sales.sales_v s
                 WHERE s.id > :watermark AND s.sold_at < :sealed_end
                """
            ),
            {
                "tz": tz.key,
                "watermark": state.sale_watermark,
                "sealed_end": day_end_exclusive(sealed, tz),
            },
        )
        changed = {day for day, _ in marks if day <= sealed} | set(backdated)
    if len(changed) > settings.metrics_reopen_threshold:
        reopen_from = min(changed)
        await _drop_from(conn, reopen_from)
        sealed = reopen_from - ONE_DAY
        report.reopened_from = reopen_from
    elif changed:
        await _aggregate_days(conn, tz, merge_ranges([(day, day) for day in changed]))
        report.redone_days += len(changed)
    if marks:
        await conn.execute(
            text(
                """
                DELETE FROM metrics.dirty_days d
                 USING unnest(CAST(:days AS date[]), CAST(:marks AS bigint[])) AS seen(day, mark)
                 WHERE d.day = seen.day AND d.mark = seen.mark
                """
            ),
            {"days": [day for day, _ in marks], "marks": [mark for _, mark in marks]},
        )
    watermark = state.sale_watermark
    if new_watermark is not None and new_watermark > watermark:
        watermark = new_watermark
    await conn.execute(
        text(
            """
            UPDATE metrics.rollup_state
               SET sealed_through = :sealed, sale_watermark = :watermark,
                   version = version + :bump, refreshed_at = now()
            """
        ),
        {"sealed": sealed, "watermark": watermark, "bump": 1 if changed else 0},
    )


async def _seal_next(
    conn: AsyncConnection, tz: ZoneInfo, target: date, chunk_days: int, report: RefreshReport
) -> bool:
    """Aggregate the next closed days (at most `chunk_days`). True while more remain."""
    state = (
        await conn.execute(text("SELECT * FROM metrics.rollup_state WHERE id = 1 FOR UPDATE"))
    ).one()
    sealed: date | None = state.sealed_through
    report.sealed_through = sealed
    if sealed is not None and sealed >= target:
        return False
    start = None if sealed is None else sealed + ONE_DAY
    if start is None:
        first_sale = await conn.scalar(text("SELECT min(sold_at) FROM sales.sales_v"))
    else:
        first_sale = await conn.scalar(
            text("SELECT min(sold_at) FROM sales.sales_v WHERE sold_at >= :since"),
            {"since": day_start(start, tz)},
        )
    first_day = first_sale.astimezone(tz).date() if first_sale is not None else None
    if first_day is None or first_day > target:
        # No sale on any day up to target: those days are sealed as empty.
        hi = target
    else:
        lo = first_day if start is None else max(start, first_day)
        hi = min(lo + timedelta(days=chunk_days - 1), target)
        await _aggregate_days(conn, tz, [(lo, hi)])
        report.sealed_days += (hi - lo).days + 1
    await conn.execute(
        text(
            "UPDATE metrics.rollup_state SET sealed_through = :hi, version = version + 1,"
            " refreshed_at = now()"
        ),
        {"hi": hi},
    )
    report.sealed_through = hi
    return hi < target


# --- aggregation -----------------------------------------------------------------------------


async def _aggregate_days(conn: AsyncConnection, tz: ZoneInfo, days: list[DayRange]) -> None:
    """(Re)compute every rollup row of the given business days from the sales views."""
    day_filter, day_params = day_ranges_sql("day", days, "d")
    for table in ROLLUP_DAY_TABLES:
        await conn.execute(text(f"DELETE FROM metrics.{table} WHERE {day_filter}"), day_params)
    instants = [(day_start(lo, tz), day_end_exclusive(hi, tz)) for lo, hi in days]
    live_filter, live_params = instant_ranges_sql("l.sold_at", instants, "l")
    await conn.execute(
        text(
            f"""
            WITH lines AS MATERIALIZED (
                SELECT {LOCAL_DAY} AS day, {LOCAL_HOUR} AS hour, l.vendor_id, l.sale_id,
                       l.item_id, l.quantity, {LINE_CENTS}::bigint AS cents
                  FROM sales.sale_lines_v l WHERE {live_filter}
            ), by_hour AS (
                INSERT INTO metrics.sales_day_hour (day, hour, revenue_cents, sales, units)
                SELECT day, hour, sum(cents), count(DISTINCT sale_id), sum(quantity)
                  FROM lines GROUP BY day, hour
            ), by_vendor AS (
                INSERT INTO metrics.sales_day_vendor (day, vendor_id, revenue_cents, sales, units)
                SELECT day, vendor_id, sum(cents), count(DISTINCT sale_id), sum(quantity)
                  FROM lines GROUP BY day, vendor_id
            )
            INSERT INTO metrics.sales_day_item (day, item_id, units, revenue_cents)
            SELECT day, item_id, sum(quantity), sum(cents) FROM lines GROUP BY day, item_id
            """
        ),
        {**live_params, "tz": tz.key},
    )
    months = sorted({month for lo, hi in days for month in _month_starts(lo, hi)})
    await _recompute_months(conn, months)


def _month_starts(lo: date, hi: date) -> list[date]:
    starts = []
    cursor = lo.replace(day=1)
    while cursor <= hi:
        starts.append(cursor)
        cursor = next_month(cursor)
    return starts


async def _recompute_months(conn: AsyncConnection, months: list[date]) -> None:
    if not months:
        return
    await conn.execute(
        text("DELETE FROM metrics.sales_month_item WHERE month = ANY (CAST(:months AS date[]))"),
        {"months": months},
    )
    ranges = merge_ranges([(month, next_month(month) - ONE_DAY) for month in months])
    day_filter, day_params = day_ranges_sql("day", ranges, "m")
    await conn.execute(
        text(
            f"""
            INSERT INTO metrics.sales_month_item (month, item_id, units, revenue_cents)
            SELECT date_trunc('month', day)::date, item_id, sum(units), sum(revenue_cents)
              FROM metrics.sales_day_item WHERE {day_filter}
             GROUP BY 1, 2
            """
        ),
        day_params,
    )


async def _drop_from(conn: AsyncConnection, first_day: date) -> None:
    """Un-seal every day from `first_day` on (many sealed days changed at once)."""
    for table in ROLLUP_DAY_TABLES:
        await conn.execute(
            text(f"DELETE FROM metrics.{table} WHERE day >= :day"), {"day": first_day}
        )
    month = first_day.replace(day=1)
    await conn.execute(
        text("DELETE FROM metrics.sales_month_item WHERE month > :month"), {"month": month}
    )
    await _recompute_months(conn, [month])


async def _delete_all(conn: AsyncConnection) -> None:
    for table in (*ROLLUP_DAY_TABLES, "sales_month_item", "dirty_days"):
        await conn.execute(text(f"DELETE FROM metrics.{table}"))
