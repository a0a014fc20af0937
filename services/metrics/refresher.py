"""The rollup refresher as a background task of the metrics service (see rollups.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.metrics.rollups import refresh
from services.metrics.settings import MetricsSettings
from stockmanager.db import Database
from stockmanager.service_app import ServiceRuntime

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


async def start_refresher(runtime: ServiceRuntime) -> None:
    settings: MetricsSettings = runtime.settings
    if settings.metrics_refresh_interval <= 0:
        return
    runtime.extras["rollup_refresher"] = asyncio.create_task(
        _run_forever(runtime.db, settings), name="metrics-rollup-refresher"
    )


async def stop_refresher(runtime: ServiceRuntime) -> None:
    task: asyncio.Task[None] | None = runtime.extras.pop("rollup_refresher", None)
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
