"""The metrics service application."""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from services.metrics import repository
from services.metrics.api import router
from services.metrics.events import consumers
from services.metrics.refresher import start_refresher
from services.metrics.runtime import MetricsResources
from services.metrics.settings import MetricsSettings, metrics_settings
from stockmanager.db import Database
from stockmanager.service_app import create_service_app


async def _open(settings: MetricsSettings, db: Database, redis: Redis) -> MetricsResources:
    repository.install_session_settings(db.engine)
    return MetricsResources(refresher=start_refresher(db, settings))


def create_app() -> FastAPI:
    return create_service_app(
        "metrics",
        settings=metrics_settings(),
        routers=[router],
        resources=_open,
        consumers=consumers,
    )
