"""Events the metrics service consumes (it publishes none).

`sale.updated`: a sale edit changes the figures of the sale's business day. When that day is
already in the rollups it is marked dirty, so requests read it live until the refresher has
aggregated it again (rollups.py). New sales need no event: they belong to today, which is always
read live, and back-dated inserts are found by sale id (coverage.py).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.metrics import repository
from services.metrics.runtime import MetricsRuntime
from services.metrics.tables import processed_events
from stockmanager.contracts.events import SaleUpdated
from stockmanager.events import EventType
from stockmanager.events.consumer import EventConsumer
from stockmanager.events.envelope import Event

log = logging.getLogger("metrics.events")

CONSUMER_GROUP = "metrics"
CONSUMED = (EventType.SALE_UPDATED,)


def sale_of(event: Event) -> int:
    """The edited sale: `data.sale_id`, else the envelope's entity id.

    Raises ValueError when neither is a sale id: the consumer dead-letters the event (marking
    no day dirty would leave the rollups silently wrong).
    """
    try:
        return event.data_as(SaleUpdated).sale_id
    except ValidationError:
        entity_id = event.entity.get("id")
        if isinstance(entity_id, int) and not isinstance(entity_id, bool):
            log.warning("sale.updated without a valid data.sale_id", extra={"event_id": event.id})
            return entity_id
        raise


def consumers(runtime: MetricsRuntime) -> list[EventConsumer]:
    settings = runtime.settings

    async def handle(conn: AsyncConnection, event: Event) -> None:
        await repository.mark_sale_day_dirty(conn, sale_of(event), settings.tz)

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
