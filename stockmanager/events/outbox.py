"""The transactional outbox: events are rows written in the same transaction as the change.

Each service owns `<schema>.outbox`; the relay publishes committed rows to the Redis stream. A
rolled-back transaction takes its events with it, and a Redis outage only delays delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.events.envelope import Event


def outbox_table(metadata: MetaData) -> Table:
    """Define the outbox table in a service's metadata (the metadata's schema is used)."""
    return Table(
        "outbox",
        metadata,
        Column("id", UUID(as_uuid=False), primary_key=True),
        # Commit order is what consumers should see; a uuid cannot give that.
        Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
        Column("type", String(64), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


def processed_events_table(metadata: MetaData) -> Table:
    """Event ids a consumer group has applied: the idempotency key for redeliveries."""
    return Table(
        "processed_events",
        metadata,
        Column("event_id", UUID(as_uuid=False), primary_key=True),
        Column("consumer_group", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def write_events(conn: AsyncConnection, outbox: Table, events: Iterable[Event]) -> None:
    rows = [{"id": event.id, "type": event.type, "payload": _payload(event)} for event in events]
    if rows:
        await conn.execute(insert(outbox), rows)


async def write_event(conn: AsyncConnection, outbox: Table, event: Event) -> None:
    await write_events(conn, outbox, [event])


def _payload(event: Event) -> dict[str, object]:
    return asdict(event)
