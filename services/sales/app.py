"""The sales service application."""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from services.sales.api import router
from services.sales.checkout import open_pool
from services.sales.idempotency import KeyPurger
from services.sales.runtime import SalesResources
from services.sales.settings import SalesSettings, sales_settings
from services.sales.tables import outbox
from stockmanager.db import Database
from stockmanager.service_app import create_service_app


async def _open(settings: SalesSettings, db: Database, redis: Redis) -> SalesResources:
    pool = await open_pool(settings)
    purger = KeyPurger(db, settings)
    purger.start()
    return SalesResources(checkout_pool=pool, purger=purger)


def create_app() -> FastAPI:
    return create_service_app(
        "sales",
        settings=sales_settings(),
        routers=[router],
        resources=_open,
        outbox=outbox,
    )
