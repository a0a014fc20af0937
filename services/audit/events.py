"""The audit consumer: group `audit`, every event type on the stream (docs/events.md)."""

from __future__ import annotations

from services.audit.runtime import AuditRuntime
from services.audit.service import record_events
from services.audit.tables import processed_events
from stockmanager.events.consumer import EventConsumer

GROUP = "audit"


def consumers(runtime: AuditRuntime) -> list[EventConsumer]:
    settings = runtime.settings
    return [
        EventConsumer(
            runtime.redis,
            stream=settings.event_stream,
            group=GROUP,
            types=None,  # every type: records.record_for decides what is audited
            db=runtime.db,
            processed=processed_events,
            batch_handler=record_events,
            reclaim_idle_ms=settings.event_reclaim_idle_ms,
        )
    ]
