"""The metrics service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.metrics import repository
from services.metrics.api import router
from services.metrics.events import consumers
from services.metrics.refresher import start_refresher, stop_refresher
from services.metrics.settings import metrics_settings
from stockmanager.service_app import ServiceRuntime, create_service_app


async def _configure_connections(runtime: ServiceRuntime) -> None:
    repository.install_session_settings(runtime.db.engine)


def create_app() -> FastAPI:
    return create_service_app(
        "metrics",
        settings=metrics_settings(),
        routers=[router],
        consumers=consumers,
        on_startup=[_configure_connections, start_refresher],
        on_shutdown=[stop_refresher],
    )
