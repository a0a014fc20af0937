"""Events the metrics service consumes (it publishes none).

`sale.updated`: a sale edit changes the figures of the sale's business day. When that day is
already in the rollups it is marked dirty, so requests read it live until the refresher has
aggregated it again (rollups.py). New sales need no event: they belong to today, which is always
read live, and back-dated inserts are found by sale id (coverage.py).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics import repository
from services.metrics.tables import processed_events
from stockmanager.events import EventType
from stockmanager.events.consumer import EventConsumer
from stockmanager.events.envelope import Event
from stockmanager.service_app import ServiceRuntime

CONSUMER_GROUP = "metrics"
CONSUMED = (EventType.SALE_UPDATED,)


def consumers(runtime: ServiceRuntime) -> list[EventConsumer]:
    settings = runtime.settings

    async def handle(conn: AsyncConnection, event: Event) -> None:
        sale_id = event.data.get("sale_id") or event.entity.get("id")
        if sale_id is None:
            return
        await repository.mark_sale_day_dirty(conn, int(sale_id), settings.tz)

    return [
        EventConsumer(
            runtime.redis,
            stream=settings.event_stream,
            group=CONSUMER_GROUP,
            types=[str(kind) for kind in CONSUMED],
            db=runtime.db,
            processed=processed_events,
            handler=handle,
            reclaim_idle_ms=settings.event_reclaim_idle_ms,
        )
    ]
