"""The item-sums memo: per-product sums over the covered days of a request, kept in SQL.

A one-year window of `/api/metrics` needs the units and revenue of every product over ~365
covered days: ~150k rollup rows. Those days only change when the rollups change, and every
rollup change bumps `rollup_state.version`, so the sums are memoised under a key made of the
version and the covered day ranges (`metrics.item_sums`, ~10k rows per key). A key can never
hold stale sums: the fill only writes when the version it was computed for is still current,
in the same statement. Requests read the memo in a REPEATABLE READ snapshot, so an entry
dropped by a later refresh stays visible to the requests that already chose it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics.coverage import DayPlan
from services.metrics.sql import covered_item_source

# Entries kept besides those of the current version being filled (arbitrary from/to windows
# would otherwise grow the memo without bound).
KEEP_ENTRIES = 32
PURGE_LOCK_KEY = 7_403_551_305  # arbitrary constant: "metrics item-sums purge"


def cache_key(plan: DayPlan, version: int) -> str | None:
    """The memo key of the plan's covered days (None: nothing covered, nothing to memoise)."""
    if not plan.covered:
        return None
    ranges = ",".join(f"{lo.isoformat()}/{hi.isoformat()}" for lo, hi in plan.covered)
    return f"v{version}:{ranges}"


async def missing_keys(conn: AsyncConnection, keys: Iterable[str]) -> set[str]:
    wanted = set(keys)
    if not wanted:
        return set()
    present = await conn.scalars(
        text("SELECT cache_key FROM metrics.item_sums_keys WHERE cache_key = ANY (:keys)"),
        {"keys": sorted(wanted)},
    )
    return wanted - set(present)


async def fill(conn: AsyncConnection, key: str, plan: DayPlan, version: int) -> bool:
    """Compute and store the sums of `key`; False if the rollups moved past `version` (or
    another request stored them first). The caller commits."""
    source = covered_item_source(plan, "f", None)
    inserted = await conn.scalar(
        text(
            f"""
            WITH entry AS (
                INSERT INTO metrics.item_sums_keys (cache_key, version)
                SELECT :key, :version
                 WHERE (SELECT version FROM metrics.rollup_state WHERE id = 1) = :version
                ON CONFLICT (cache_key) DO NOTHING
                RETURNING cache_key
            ), sums AS (
                INSERT INTO metrics.item_sums (cache_key, item_id, units, revenue_cents)
                SELECT e.cache_key, u.item_id, sum(u.units), sum(u.revenue_cents)
                  FROM entry e CROSS JOIN ({source.sql}) u
                 GROUP BY e.cache_key, u.item_id
            )
            SELECT count(*) FROM entry
            """
        ),
        {**source.params, "key": key, "version": version},
    )
    await purge(conn)
    return bool(inserted)


async def purge(conn: AsyncConnection, *, keep: int = KEEP_ENTRIES) -> None:
    """Drop entries of older rollup versions and all but the `keep` newest entries.

    One purger at a time (concurrent purges could deadlock on the same rows); a purge that
    finds the lock taken is simply skipped, the other one does the work."""
    if not await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PURGE_LOCK_KEY}
    ):
        return
    await conn.execute(
        text(
            """
            DELETE FROM metrics.item_sums_keys
             WHERE version < (SELECT version FROM metrics.rollup_state WHERE id = 1)
                OR cache_key IN (SELECT cache_key FROM metrics.item_sums_keys
                                  ORDER BY created_at DESC, cache_key OFFSET :keep)
            """
        ),
        {"keep": keep},
    )
