"""The users service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.users.api import router
from services.users.settings import users_settings
from services.users.tables import outbox
from stockmanager.service_app import create_service_app


def create_app() -> FastAPI:
    return create_service_app(
        "users", settings=users_settings(), routers=[router], outbox=outbox
    )
