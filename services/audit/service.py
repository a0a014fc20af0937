"""Rules of the audit service: who may read what, filter parsing, and the recorder.

Never commits: the consumer's transaction (or a request's connection) is the boundary.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from services.audit import repository, schemas
from services.audit.records import record_for
from services.audit.repository import BULK_PRODUCT_EVENTS, Filters
from stockmanager.errors import Forbidden, ValidationFailed
from stockmanager.events import Event
from stockmanager.identity import Identity
from stockmanager.timefmt import parse_date, parse_date_or_timestamp

log = logging.getLogger("audit")


async def record_events(conn: AsyncConnection, events: list[Event]) -> None:
    """The consumer's batch handler: one audit record per audited event, never two."""
    records = [record for record in map(record_for, events) if record is not None]
    for event_id in await repository.insert_records(conn, records):
        # processed_events normally prevents this; UNIQUE(event_id) is the last line.
        log.info("audit record already present", extra={"event_id": event_id})


async def record_event(conn: AsyncConnection, event: Event) -> None:
    """One event (see record_events)."""
    await record_events(conn, [event])


def _bound(name: str, value: str | None, tz: ZoneInfo, *, end: bool) -> tuple[Any, bool]:
    """(instant, inclusive) for a `from`/`to` value; (None, False) when absent."""
    if value is None or not value.strip():
        return None, False
    text = value.strip()
    try:
        instant = parse_date_or_timestamp(text, tz, end=end)
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(
            f"Parámetro '{name}' inválido: use una fecha YYYY-MM-DD o una fecha y hora ISO 8601"
        ) from exc
    try:
        parse_date(text)
    except ValueError:
        return instant, True  # an explicit timestamp is an inclusive bound
    return instant, False  # a date's end is the (exclusive) start of the next day


def parse_filters(
    action: str | None, date_from: str | None, date_to: str | None, tz: ZoneInfo
) -> Filters:
    since, _ = _bound("from", date_from, tz, end=False)
    until, inclusive = _bound("to", date_to, tz, end=True)
    wanted = action.strip().lower() if action and action.strip() else None
    return Filters(action=wanted, since=since, until=until, until_inclusive=inclusive)


def check_history_access(caller: Identity, user_id: int) -> None:
    """Your own history, or anyone's for root; admins included, others are 403 (upstream)."""
    if caller.user_id != user_id and not caller.is_root:
        raise Forbidden()


async def user_history(
    conn: AsyncConnection,
    user_id: int,
    filters: Filters,
    *,
    offset: int,
    limit: int,
    tz: ZoneInfo,
) -> dict[str, Any]:
    total, rows = await repository.list_records(
        conn, filters, user_id=user_id, offset=offset, limit=limit
    )
    return schemas.record_list(total, [schemas.record(row, tz) for row in rows])


async def all_records(
    conn: AsyncConnection, filters: Filters, *, offset: int, limit: int, tz: ZoneInfo
) -> dict[str, Any]:
    total, rows = await repository.list_records(conn, filters, offset=offset, limit=limit)
    return schemas.record_list(total, [schemas.record(row, tz) for row in rows])


def _own_entry(value: Any, entity_id: int) -> Any:
    """A bulk record's entry for one product (`{id, name, price}`), else the value unchanged."""
    if isinstance(value, dict) and isinstance(value.get("products"), list):
        for entry in value["products"]:
            if isinstance(entry, dict) and entry.get("id") == entity_id:
                return entry
    return value


async def entity_history(
    conn: AsyncConnection,
    entity_type: str,
    entity_id: int,
    filters: Filters,
    *,
    offset: int,
    limit: int,
    tz: ZoneInfo,
) -> dict[str, Any]:
    entity_type = entity_type.strip().lower()
    total, rows = await repository.entity_trail(
        conn, entity_type, entity_id, filters, offset=offset, limit=limit
    )
    changes = []
    for row in rows:
        old, new = row.old_value, row.new_value
        if row.entity_id is None and row.event_type in BULK_PRODUCT_EVENTS:
            old, new = _own_entry(old, entity_id), _own_entry(new, entity_id)
        changes.append(schemas.change(row, tz, old, new))
    return schemas.trail(entity_type, entity_id, total, changes)
