"""The metrics service's typed runtime: its settings, its resources, and the dependency."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.metrics.settings import MetricsSettings
from stockmanager.service_app import ServiceRuntime, runtime_dependency


@dataclass
class MetricsResources:
    # The rollup refresher (refresher.py); None when disabled (metrics_refresh_interval 0).
    refresher: asyncio.Task[None] | None

    async def close(self) -> None:
        if self.refresher is None:
            return
        self.refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.refresher


MetricsRuntime = ServiceRuntime[MetricsSettings, MetricsResources]
Runtime = Annotated[MetricsRuntime, Depends(runtime_dependency(MetricsSettings, MetricsResources))]
