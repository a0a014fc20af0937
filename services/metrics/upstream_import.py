"""`stockmanager import-upstream`: the metrics schema's part (docs/upgrading-from-stockmanager.md).

Imported sales keep their upstream ids, which may lie below the rollups' sale-id watermark, so
the watermark alone would not notice them (rollups.py). Their business days are therefore marked
dirty in the import's transaction (from its commit on, requests read those days live, so every
answer includes the imported sales) and `rebuild` re-aggregates them right after the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date
from typing import Any

import psycopg

from services.metrics.rollups import RefreshReport, refresh
from services.metrics.settings import MetricsSettings
from stockmanager.db import Database

# Another refresher (a running metrics service) may hold the refresh lock for a pass.
LOCK_RETRY_SECONDS = 0.2
LOCK_RETRIES = 600


async def mark_days(conn: psycopg.AsyncConnection[Any], days: Iterable[date]) -> None:
    """Mark the business days of imported sales dirty, in the caller's transaction."""
    wanted = sorted(set(days))
    if not wanted:
        return
    await conn.execute(
        """
        INSERT INTO metrics.dirty_days (day) SELECT unnest(CAST(%s AS date[]))
        ON CONFLICT (day) DO UPDATE
           SET mark = nextval('metrics.dirty_mark_seq'), marked_at = now()
        """,
        (wanted,),
    )
    # Memo entries are keyed by the version: none computed before the import is reused.
    await conn.execute("UPDATE metrics.rollup_state SET version = version + 1")


async def rebuild(database_url: str) -> RefreshReport:
    """One refresher pass now (after the import committed): the dirty days re-aggregated."""
    db = Database(database_url, pool_size=1, max_overflow=0)
    try:
        for _ in range(LOCK_RETRIES):
            report = await refresh(db, MetricsSettings())
            if report is not None:
                return report
            await asyncio.sleep(LOCK_RETRY_SECONDS)  # the service's own pass is running
        raise TimeoutError("the metrics refresh lock stayed taken")
    finally:
        await db.dispose()
