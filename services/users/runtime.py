"""The users service's typed runtime: its settings, its resources, and the dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.users.mailer import MailDispatcher
from services.users.passwords import HashingSlots
from services.users.settings import UsersSettings
from stockmanager.service_app import ServiceRuntime, runtime_dependency


@dataclass
class UsersResources:
    # Password-reset mail, sent in the background and drained at shutdown.
    mail: MailDispatcher
    # Every Argon2 computation of the process goes through these (bounded by memory).
    hashing: HashingSlots

    async def close(self) -> None:
        await self.mail.stop()


UsersRuntime = ServiceRuntime[UsersSettings, UsersResources]
Runtime = Annotated[UsersRuntime, Depends(runtime_dependency(UsersSettings, UsersResources))]
