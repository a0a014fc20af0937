"""The rollup refresher as a background task of the metrics service (see rollups.py)."""

from __future__ import annotations

import asyncio
import logging

from services.metrics.rollups import refresh
from services.metrics.settings import MetricsSettings
from stockmanager.db import Database

log = logging.getLogger("stockmanager.metrics.rollups")


async def _run_forever(db: Database, settings: MetricsSettings) -> None:
    while True:
        try:
            report = await refresh(db, settings)
            if report is not None and (report.sealed_days or report.redone_days):
                log.info(
                    "rollups refreshed",
                    extra={
                        "sealed_days": report.sealed_days,
                        "redone_days": report.redone_days,
                        "sealed_through": str(report.sealed_through),
                    },
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rollup refresh failed; retrying at the next interval")
        await asyncio.sleep(settings.metrics_refresh_interval)


def start_refresher(db: Database, settings: MetricsSettings) -> asyncio.Task[None] | None:
    """The refresher's task (cancelled at shutdown, runtime.py), or None when it is disabled."""
    if settings.metrics_refresh_interval <= 0:
        return None
    return asyncio.create_task(_run_forever(db, settings), name="metrics-rollup-refresher")
