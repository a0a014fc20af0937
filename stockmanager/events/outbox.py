"""The transactional outbox: events are rows written in the same transaction as the change.

Each service owns `<schema>.outbox`; the relay publishes committed rows to the Redis stream. A
rolled-back transaction takes its events with it, and a Redis outage only delays delivery.

One writer for both database drivers in use: `write_events` takes a SQLAlchemy
`AsyncConnection` or a raw psycopg connection (the sales checkout pool). Both run the same
statement (`insert_sql`): every event of the call in one JSON array parameter (`rows_json`),
inserted in the given order. A caller that folds the insert into a statement of its own (a
data-modifying CTE) uses those two pieces directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from functools import cache
from typing import Any, Final, Literal

import psycopg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    TextClause,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.events.envelope import Event
from stockmanager.http import dumps


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


ParamStyle = Literal["psycopg", "sqlalchemy"]

ROWS_PARAM: Final = "outbox_events"
"""The name of the JSON array parameter of `insert_sql`."""

_ENVELOPE_FIELDS = tuple(field.name for field in fields(Event))


def _envelope(event: Event) -> dict[str, Any]:
    # The envelope's values are already plain JSON data: a shallow dict is enough (asdict's
    # recursive deep copy showed up in the sales checkout profile).
    return {name: getattr(event, name) for name in _ENVELOPE_FIELDS}


def rows_json(events: Iterable[Event]) -> str:
    """The events' envelopes as one JSON array, the value of `ROWS_PARAM`."""
    return dumps([_envelope(event) for event in events]).decode()


def envelope_json(event: Event) -> str:
    """One event's envelope as a JSON object (a row an outbox payload is built from in SQL:
    the sales checkout's `sales.record_sale`)."""
    return dumps(_envelope(event)).decode()


@cache
def insert_sql(outbox: Table, style: ParamStyle) -> str:
    """`INSERT INTO <schema>.outbox ...` of the events in `ROWS_PARAM`, in array order."""
    param = f"%({ROWS_PARAM})s" if style == "psycopg" else f":{ROWS_PARAM}"
    return f"""
    INSERT INTO {outbox.fullname} (id, type, payload)
    SELECT CAST(e ->> 'id' AS uuid), e ->> 'type', e
      FROM jsonb_array_elements(CAST({param} AS jsonb)) WITH ORDINALITY AS ev(e, n)
     ORDER BY ev.n
"""


@cache
def _sqlalchemy_insert(outbox: Table) -> TextClause:
    return text(insert_sql(outbox, "sqlalchemy"))


async def write_events(
    conn: AsyncConnection | psycopg.AsyncConnection[Any],
    outbox: Table,
    events: Iterable[Event],
) -> None:
    """Write the events in the caller's transaction (nothing to write, no statement)."""
    batch = events if isinstance(events, Sequence) else list(events)
    if not batch:
        return
    params = {ROWS_PARAM: rows_json(batch)}
    if isinstance(conn, AsyncConnection):
        await conn.execute(_sqlalchemy_insert(outbox), params)
    else:
        await conn.execute(insert_sql(outbox, "psycopg"), params)


async def write_event(
    conn: AsyncConnection | psycopg.AsyncConnection[Any], outbox: Table, event: Event
) -> None:
    await write_events(conn, outbox, [event])
