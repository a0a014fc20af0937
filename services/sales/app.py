"""The sales service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.sales.api import router
from services.sales.checkout import close_pool, open_pool
from services.sales.idempotency import start_purger, stop_purger
from services.sales.settings import sales_settings
from services.sales.tables import outbox
from stockmanager.service_app import create_service_app


def create_app() -> FastAPI:
    return create_service_app(
        "sales",
        settings=sales_settings(),
        routers=[router],
        outbox=outbox,
        on_startup=[open_pool, start_purger],
        on_shutdown=[stop_purger, close_pool],
    )
