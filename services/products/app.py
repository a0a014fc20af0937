"""The products service application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from services.products.api import router
from services.products.openfoodfacts import OpenFoodFacts
from services.products.settings import products_settings
from services.products.tables import outbox
from stockmanager.service_app import ServiceRuntime, create_service_app


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


async def _open(runtime: ServiceRuntime) -> None:
    event.listen(runtime.db.engine.sync_engine, "connect", _force_custom_plans)
    runtime.extras["openfoodfacts"] = OpenFoodFacts(runtime.settings, runtime.redis)


async def _close(runtime: ServiceRuntime) -> None:
    lookup = runtime.extras.pop("openfoodfacts", None)
    if lookup is not None:
        await lookup.close()


def create_app() -> FastAPI:
    return create_service_app(
        "products",
        settings=products_settings(),
        routers=[router],
        outbox=outbox,
        on_startup=[_open],
        on_shutdown=[_close],
    )
