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
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg

from services.metrics.rollups import RefreshReport, refresh
from services.metrics.settings import MetricsSettings
from stockmanager.db import Database

# Another refresher (a running metrics service) may hold the refresh lock for a pass.
LOCK_RETRY_SECONDS = 0.2
LOCK_RETRIES = 600
# The rebuild seals every imported day in one transaction: each chunk of the refresher reads
# the whole of `sales.sale_lines` (hash join), so two years in the default 62-day chunks read
# 600,000 lines a dozen times. Nothing else waits on this pass (it runs inside the command).
ONE_PASS_DAYS = 100 * 366
# ...and with the memory to aggregate them in RAM: at the default 4 MB the three GROUP BYs of
# 600,000 lines sort and hash on disk. Only this one connection of the command gets it.
REBUILD_WORK_MEM = "256MB"


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
    db = Database(_with_work_mem(database_url), pool_size=1, max_overflow=0)
    settings = MetricsSettings(metrics_seal_chunk_days=ONE_PASS_DAYS)
    try:
        for _ in range(LOCK_RETRIES):
            report = await refresh(db, settings)
            if report is not None:
                return report
            await asyncio.sleep(LOCK_RETRY_SECONDS)  # the service's own pass is running
        raise TimeoutError("the metrics refresh lock stayed taken")
    finally:
        await db.dispose()


def _with_work_mem(database_url: str) -> str:
    """The URL with `-c work_mem=...` added to libpq's `options` (kept if already there)."""
    parts = urlsplit(database_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(v for k, v in query if k == "options")
    options = f"{options} -c work_mem={REBUILD_WORK_MEM}".strip()
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
