"""The products service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.products.settings import products_settings
from services.products.tables import outbox
from stockmanager.service_app import create_service_app


def create_app() -> FastAPI:
    return create_service_app("products", settings=products_settings(), routers=[], outbox=outbox)
