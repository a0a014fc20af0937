"""All SQL of the audit service. The table is append-only: there is an INSERT and SELECTs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, func, literal, or_, select, text, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from services.audit.records import AuditRecord
from services.audit.tables import audit_log
from stockmanager.http import dumps

# Bulk product events have no single entity id; they list the products in new_value.
BULK_PRODUCT_EVENTS = ("product.prices_bulk_updated", "product.stock_bulk_updated")


@dataclass(frozen=True, slots=True)
class Filters:
    action: str | None = None  # already lower-cased
    since: datetime | None = None  # inclusive
    until: datetime | None = None
    until_inclusive: bool = False  # a timestamp bound is inclusive, a date's end is not

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.action:
            found.append(audit_log.c.action == self.action)
        if self.since is not None:
            found.append(audit_log.c.occurred_at >= self.since)
        if self.until is not None:
            column = audit_log.c.occurred_at
            found.append(column <= self.until if self.until_inclusive else column < self.until)
        return found


async def insert_record(conn: AsyncConnection, record: AuditRecord) -> bool:
    """Insert one record; False when its event id is already recorded (never a duplicate)."""
    return not await insert_records(conn, [record])


# The record columns, in the order of AuditRecord's fields.
_RECORD_COLUMNS = AuditRecord.__slots__
_JSON_COLUMNS = frozenset({"old_value", "new_value"})


def _record_select(column: str) -> str:
    # SQLAlchemy's JSONB type stored a Python None as JSON null (not SQL NULL); keep that.
    return f"COALESCE(r.{column}, 'null'::jsonb)" if column in _JSON_COLUMNS else f"r.{column}"


# Every record of a batch in one statement: one JSON array parameter, each element read as a
# row of the table's type, inserted in array order (ids follow the stream's order).
_INSERT_RECORDS = text(
    f"""
    INSERT INTO {audit_log.fullname} ({", ".join(_RECORD_COLUMNS)})
    SELECT {", ".join(_record_select(column) for column in _RECORD_COLUMNS)}
      FROM jsonb_array_elements(CAST(:records AS jsonb)) WITH ORDINALITY AS e(doc, n)
     CROSS JOIN LATERAL jsonb_populate_record(NULL::{audit_log.fullname}, e.doc) AS r
     ORDER BY e.n
        ON CONFLICT (event_id) DO NOTHING
    RETURNING CAST(event_id AS text)
    """
)


async def insert_records(conn: AsyncConnection, records: Sequence[AuditRecord]) -> list[str]:
    """Insert the records with one statement; returns the event ids that were already
    recorded (and so were not inserted again: UNIQUE(event_id))."""
    if not records:
        return []
    payload = dumps([record.row() for record in records]).decode()
    inserted = set(await conn.scalars(_INSERT_RECORDS, {"records": payload}))
    return [record.event_id for record in records if record.event_id not in inserted]


_LIST_COLUMNS = (
    audit_log.c.id,
    audit_log.c.user_id,
    audit_log.c.username,
    audit_log.c.role,
    audit_log.c.action,
    audit_log.c.entity_type,
    audit_log.c.entity_id,
    audit_log.c.description,
    audit_log.c.occurred_at,
    audit_log.c.status,
    audit_log.c.ip_address,
    audit_log.c.request_id,
    audit_log.c.event_type,
    audit_log.c.old_value,
    audit_log.c.new_value,
)


async def list_records(
    conn: AsyncConnection,
    filters: Filters,
    *,
    user_id: int | None = None,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    """Newest first (id breaks ties), and the number of records matching the filters."""
    conditions = filters.conditions()
    if user_id is not None:
        conditions.append(audit_log.c.user_id == user_id)
    where = and_(true(), *conditions)
    total = await conn.scalar(select(func.count()).select_from(audit_log).where(where))
    rows = (
        await conn.execute(
            select(*_LIST_COLUMNS)
            .where(where)
            .order_by(audit_log.c.occurred_at.desc(), audit_log.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return int(total or 0), rows


def _entity_condition(entity_type: str, entity_id: int) -> ColumnElement[bool]:
    direct = and_(audit_log.c.entity_type == entity_type, audit_log.c.entity_id == entity_id)
    if entity_type != "product":
        return direct
    probe = cast(literal({"products": [{"id": entity_id}]}, JSONB), JSONB)
    listed = and_(
        audit_log.c.entity_id.is_(None),
        audit_log.c.entity_type == "product",
        audit_log.c.event_type.in_(BULK_PRODUCT_EVENTS),
        audit_log.c.new_value.op("@>")(probe),
    )
    return or_(direct, listed)


async def entity_trail(
    conn: AsyncConnection,
    entity_type: str,
    entity_id: int,
    filters: Filters,
    *,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    """Oldest first (id breaks ties): the history of one entity."""
    where = and_(_entity_condition(entity_type, entity_id), *filters.conditions())
    total = await conn.scalar(select(func.count()).select_from(audit_log).where(where))
    rows = (
        await conn.execute(
            select(*_LIST_COLUMNS)
            .where(where)
            .order_by(audit_log.c.occurred_at.asc(), audit_log.c.id.asc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return int(total or 0), rows
