"""The notifications service's typed runtime: its settings, its resources, and the dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.notifications.fanout import NotificationHub
from services.notifications.settings import NotificationsSettings
from stockmanager.service_app import ServiceRuntime, runtime_dependency


@dataclass
class NotificationsResources:
    # Live streams of this replica, told of changes through Redis pub/sub (fanout.py).
    hub: NotificationHub

    async def close(self) -> None:
        await self.hub.stop()


NotificationsRuntime = ServiceRuntime[NotificationsSettings, NotificationsResources]
Runtime = Annotated[
    NotificationsRuntime,
    Depends(runtime_dependency(NotificationsSettings, NotificationsResources)),
]
