"""The users service application."""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from services.users.api import router as accounts_router
from services.users.api_reset import router as reset_router
from services.users.api_settings import router as settings_router
from services.users.mailer import MailDispatcher, mailer_for, warn_if_unconfigured
from services.users.passwords import HashingSlots
from services.users.runtime import UsersResources
from services.users.settings import UsersSettings, users_settings
from services.users.tables import outbox
from stockmanager.db import Database
from stockmanager.service_app import create_service_app


async def _open(settings: UsersSettings, db: Database, redis: Redis) -> UsersResources:
    warn_if_unconfigured(settings)
    dispatcher = MailDispatcher(mailer_for(settings))
    dispatcher.start()
    return UsersResources(mail=dispatcher, hashing=HashingSlots(settings.argon2_max_concurrency))


def create_app() -> FastAPI:
    return create_service_app(
        "users",
        settings=users_settings(),
        # The reset router comes before the accounts router: its fixed paths under /api/users/
        # must not be taken for a user id.
        routers=[reset_router, accounts_router, settings_router],
        resources=_open,
        outbox=outbox,
    )
