"""The notifications service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.notifications import service
from services.notifications.api import router
from services.notifications.consumer import NotificationsConsumer
from services.notifications.fanout import NotificationHub
from services.notifications.settings import NotificationsSettings, notifications_settings
from services.notifications.sse import sse_frame
from services.notifications.tables import outbox
from stockmanager.events.consumer import EventConsumer
from stockmanager.service_app import ServiceRuntime, create_service_app


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or notifications_settings()

    async def start_hub(runtime: ServiceRuntime) -> None:
        async def load_update_frame(user_id: int) -> bytes:
            async with runtime.db.connect() as conn:
                payload = await service.unread(conn, user_id, service.UNREAD_LIMIT, settings.tz)
            return sse_frame("update", payload)

        hub = NotificationHub(settings.redis_url, settings.sse_channel, load_update_frame)
        runtime.extras["hub"] = hub
        await hub.start()

    async def stop_hub(runtime: ServiceRuntime) -> None:
        hub: NotificationHub | None = runtime.extras.get("hub")
        if hub is not None:
            await hub.stop()

    def consumers(runtime: ServiceRuntime) -> list[EventConsumer]:
        return [NotificationsConsumer(runtime, runtime.extras["hub"])]

    return create_service_app(
        "notifications",
        settings=settings,
        routers=[router],
        outbox=outbox,
        consumers=consumers,
        on_startup=[start_hub],
        on_shutdown=[stop_hub],
    )
