"""The memo: sums over the covered days of a request, computed once and kept in SQL.

A one-year report needs, over ~2 x 365 covered days, the sales per day, per weekday-hour and
per seller, and the units and revenue of every product: ~170k rollup rows. Those days only
change when the rollups change, and every rollup change bumps `rollup_state.version`, so their
sums are memoised under a key made of the version and the covered day ranges: ~600 rows in
`metrics.sales_sums` and ~10k in `metrics.item_sums` per key. A key never holds stale sums:
the fill writes only while the version it was computed for is still current, in the same
statement. Requests read the memo in a REPEATABLE READ snapshot, so an entry dropped by a later
refresh stays visible to the requests that already chose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics.coverage import DayPlan
from services.metrics.sql import covered_items, covered_sales_rows

# Entries kept besides those of the current version (arbitrary from/to windows would otherwise
# grow the memo without bound).
KEEP_ENTRIES = 64
PURGE_LOCK_KEY = 7_403_551_305  # arbitrary constant: "metrics memo purge"

Family = Literal["sales", "items"]


@dataclass(frozen=True, slots=True)
class MemoEntry:
    key: str
    family: Family
    plan: DayPlan
    current_lo: date | None = None  # sales: where the current window starts


def entry(
    family: Family, plan: DayPlan, version: int, current_lo: date | None = None
) -> MemoEntry | None:
    """The memo entry of the plan's covered days (None: nothing covered, nothing to memoise)."""
    if not plan.covered:
        return None
    ranges = ",".join(f"{lo.isoformat()}/{hi.isoformat()}" for lo, hi in plan.covered)
    split = f"@{current_lo.isoformat()}" if current_lo is not None else ""
    return MemoEntry(f"{family}:v{version}:{ranges}{split}", family, plan, current_lo)


async def fill(conn: AsyncConnection, memo: MemoEntry, version: int) -> bool:
    """Compute and store one entry; False if the rollups moved past `version` (or another
    request stored it first). The caller commits."""
    if memo.family == "sales":
        source = covered_sales_rows(memo.plan, "f")
        target = "metrics.sales_sums (cache_key, kind, k, revenue_cents, sales, units)"
        columns = "e.cache_key, u.kind, u.k, u.revenue_cents, u.sales, u.units"
        params = {**source.params, "current_lo": memo.current_lo}
    else:
        source = covered_items(memo.plan, "f", None)
        target = "metrics.item_sums (cache_key, item_id, units, revenue_cents)"
        columns = "e.cache_key, u.item_id, u.units, u.revenue_cents"
        params = dict(source.params)
    inserted = await conn.scalar(
        text(
            f"""
            WITH entry AS (
                INSERT INTO metrics.memo_keys (cache_key, version)
                SELECT :key, :version
                 WHERE (SELECT version FROM metrics.rollup_state WHERE id = 1) = :version
                ON CONFLICT (cache_key) DO NOTHING
                RETURNING cache_key
            ), stored AS (
                INSERT INTO {target}
                SELECT {columns} FROM entry e CROSS JOIN ({source.sql}) u
            )
            SELECT count(*) FROM entry
            """
        ),
        {**params, "key": memo.key, "version": version},
    )
    await purge(conn)
    return bool(inserted)


async def purge(conn: AsyncConnection, *, keep: int = KEEP_ENTRIES) -> None:
    """Drop entries of older rollup versions and all but the `keep` newest entries.

    One purger at a time (concurrent purges could deadlock on the same rows); a purge that
    finds the lock taken is skipped, the other one does the work."""
    if not await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PURGE_LOCK_KEY}
    ):
        return
    await conn.execute(
        text(
            """
            DELETE FROM metrics.memo_keys
             WHERE version < (SELECT version FROM metrics.rollup_state WHERE id = 1)
                OR cache_key IN (SELECT cache_key FROM metrics.memo_keys
                                  ORDER BY created_at DESC, cache_key OFFSET :keep)
            """
        ),
        {"keep": keep},
    )
