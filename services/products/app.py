"""The products service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.products.api import router
from services.products.openfoodfacts import OpenFoodFacts
from services.products.settings import products_settings
from services.products.tables import outbox
from stockmanager.service_app import ServiceRuntime, create_service_app


async def _open_lookup(runtime: ServiceRuntime) -> None:
    runtime.extras["openfoodfacts"] = OpenFoodFacts(runtime.settings, runtime.redis)


async def _close_lookup(runtime: ServiceRuntime) -> None:
    lookup = runtime.extras.pop("openfoodfacts", None)
    if lookup is not None:
        await lookup.close()


def create_app() -> FastAPI:
    return create_service_app(
        "products",
        settings=products_settings(),
        routers=[router],
        outbox=outbox,
        on_startup=[_open_lookup],
        on_shutdown=[_close_lookup],
    )
