"""Domain events: one envelope, a transactional outbox, a relay to Redis Streams, consumers."""

from stockmanager.events.envelope import Event, EventType, new_event
from stockmanager.events.outbox import outbox_table, write_event, write_events

__all__ = ["Event", "EventType", "new_event", "outbox_table", "write_event", "write_events"]
