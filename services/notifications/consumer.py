"""The `notifications` consumer group: domain events in, notifications out, streams told after
commit.

The kernel's EventConsumer runs the handler inside its transaction and records the event id
(idempotency), one transaction per batch of events, and the batch's notifications are one
INSERT. The live streams must only hear about a
notification once it is committed, so this subclass remembers which users the handler touched
and publishes them from the kernel's `after_commit` hook; a redelivered (already processed)
event touches nobody.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifications import service
from services.notifications.events import CONSUMED
from services.notifications.fanout import NotificationHub
from services.notifications.runtime import NotificationsRuntime
from services.notifications.tables import processed_events
from stockmanager.events import Event
from stockmanager.events.consumer import EventConsumer

GROUP = "notifications"


class NotificationsConsumer(EventConsumer):
    def __init__(self, runtime: NotificationsRuntime, hub: NotificationHub) -> None:
        settings = runtime.settings
        super().__init__(
            runtime.redis,
            stream=settings.event_stream,
            group=GROUP,
            types=CONSUMED,
            db=runtime.db,
            processed=processed_events,
            batch_handler=self._handle,
            reclaim_idle_ms=settings.event_reclaim_idle_ms,
        )
        self.hub = hub
        self._touched: dict[str, set[int]] = {}

    async def _handle(self, conn: AsyncConnection, events: list[Event]) -> None:
        self._touched.update(await service.notify_from_events(conn, events))

    async def after_commit(self, applied: list[Event]) -> None:
        # Streams may only hear about notifications that are committed.
        touched: set[int] = set()
        for event in applied:
            touched |= self._touched.pop(event.id, set())
        await self.hub.publish(touched)

    async def after_rollback(self, events: list[Event]) -> None:
        for event in events:
            self._touched.pop(event.id, None)
