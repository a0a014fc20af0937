"""The products service application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import event

from services.products.api import router
from services.products.openfoodfacts import OpenFoodFacts
from services.products.runtime import ProductsResources
from services.products.settings import ProductsSettings, products_settings
from services.products.tables import outbox
from stockmanager.db import Database
from stockmanager.service_app import create_service_app


def _force_custom_plans(dbapi_connection: Any, _record: Any) -> None:
    """Plan every statement with its actual values.

    psycopg prepares a statement after a few executions, and PostgreSQL may then switch to a
    generic plan. For `LIKE '%term%'` a generic plan always takes the trigram index, which for
    a term too short to have trigrams (`té`) scans the whole index: 200 ms instead of a 15 ms
    sequential scan on 50,000 products (bench/results/products.md).
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("SET plan_cache_mode = force_custom_plan")
    cursor.close()
    dbapi_connection.commit()  # SET is transactional: keep it past the pool's rollback


async def _open(settings: ProductsSettings, db: Database, redis: Redis) -> ProductsResources:
    event.listen(db.engine.sync_engine, "connect", _force_custom_plans)
    return ProductsResources(openfoodfacts=OpenFoodFacts(settings, redis))


def create_app() -> FastAPI:
    return create_service_app(
        "products",
        settings=products_settings(),
        routers=[router],
        resources=_open,
        outbox=outbox,
    )
