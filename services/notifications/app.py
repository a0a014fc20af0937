"""The notifications service application."""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from services.notifications import service
from services.notifications.api import router
from services.notifications.consumer import NotificationsConsumer
from services.notifications.fanout import NotificationHub
from services.notifications.runtime import NotificationsResources, NotificationsRuntime
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.notifications.sse import sse_frame
from services.notifications.tables import outbox
from stockmanager.db import Database
from stockmanager.events.consumer import EventConsumer
from stockmanager.service_app import create_service_app


async def _open(
    settings: NotificationsSettings, db: Database, redis: Redis
) -> NotificationsResources:
    async def load_update_frame(user_id: int) -> bytes:
        async with db.connect() as conn:
            payload = await service.unread(conn, user_id, service.UNREAD_LIMIT, settings.tz)
        return sse_frame("update", payload)

    hub = NotificationHub(settings.redis_url, settings.sse_channel, load_update_frame)
    await hub.start()
    return NotificationsResources(hub=hub)


def _consumers(runtime: NotificationsRuntime) -> list[EventConsumer]:
    return [NotificationsConsumer(runtime, runtime.resources.hub)]


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    return create_service_app(
        "notifications",
        settings=settings or notifications_settings(),
        routers=[router],
        resources=_open,
        outbox=outbox,
        consumers=_consumers,
    )
