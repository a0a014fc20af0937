"""The users service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.users.api import router as accounts_router
from services.users.api_reset import router as reset_router
from services.users.api_settings import router as settings_router
from services.users.mailer import MailDispatcher, mailer_for
from services.users.settings import users_settings
from services.users.tables import outbox
from stockmanager.service_app import ServiceRuntime, create_service_app


async def _start_mail(runtime: ServiceRuntime) -> None:
    dispatcher = MailDispatcher(mailer_for(runtime.settings))
    dispatcher.start()
    runtime.extras["mail"] = dispatcher


async def _drain_mail(runtime: ServiceRuntime) -> None:
    dispatcher: MailDispatcher | None = runtime.extras.get("mail")
    if dispatcher is not None:
        await dispatcher.stop()


def create_app() -> FastAPI:
    return create_service_app(
        "users",
        settings=users_settings(),
        # The reset router comes before the accounts router: its fixed paths under /api/users/
        # must not be taken for a user id.
        routers=[reset_router, accounts_router, settings_router],
        outbox=outbox,
        on_startup=[_start_mail],
        on_shutdown=[_drain_mail],
    )
