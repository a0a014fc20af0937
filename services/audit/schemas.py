"""Wire shapes of the audit service (reference §2.5), plus documented additions.

The builders below make the bodies the endpoints send; the response models document exactly
those bodies (the tests check real answers against them).
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Row

from stockmanager.timefmt import iso_local

# --------------------------------------------------------------------------------- responses

TIMESTAMP_DESCRIPTION = (
    "ISO 8601 with `T`, microseconds when non-zero, in the business time zone with its offset"
)
VALUE_DESCRIPTION = (
    "The state {0} the change as stored (parsed JSON, usually an object; secrets removed), or null"
)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Actor(_Response):
    user_id: int | None = Field(description="The actor; null for anonymous actors")
    username: str | None = Field(description="The actor's name at the time of the event")


class AuditEntry(_Actor):
    """One audit record: upstream's nine keys, then the additions."""

    id: int
    action: str = Field(description="Lower-case action name (`create`, `update`, `login`, ...)")
    entity_type: str = Field(description="Lower-case entity type (`product`, `sale`, ...)")
    entity_id: int | None = Field(description="Null for events without a single entity")
    description: str
    timestamp: str = Field(description=TIMESTAMP_DESCRIPTION)
    status: Literal["success", "error"]
    role: str | None = Field(description="The actor's role at the time of the event")
    ip_address: str | None
    request_id: str | None = Field(description="The gateway's X-Request-ID")
    event_type: str = Field(description="The event that produced the record")
    old_value: Any = Field(description=VALUE_DESCRIPTION.format("before"))
    new_value: Any = Field(description=VALUE_DESCRIPTION.format("after"))


class AuditPage(_Response):
    """A page of records, newest first."""

    total: int = Field(description="Records matching the filters (not the page size)")
    records: list[AuditEntry]


class EntityChange(_Actor):
    """One change of an entity: upstream's seven keys, then the additions. Bulk product
    changes carry only this product's entry in `old_value`/`new_value`."""

    action: str
    old_value: Any = Field(description=VALUE_DESCRIPTION.format("before"))
    new_value: Any = Field(description=VALUE_DESCRIPTION.format("after"))
    timestamp: str = Field(description=TIMESTAMP_DESCRIPTION)
    description: str
    id: int
    status: Literal["success", "error"]
    role: str | None
    ip_address: str | None
    request_id: str | None
    event_type: str


class EntityTrail(_Response):
    """The history of one entity, oldest first."""

    entity_type: str = Field(description="As requested, trimmed and lower-cased")
    entity_id: int
    changes: list[EntityChange]
    total: int = Field(description="Changes matching the filters (not the page size)")


# ---------------------------------------------------------------------------------- builders


def _ip(value: Any) -> str | None:
    return None if value is None else str(value)


def record(row: Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    """A list entry: upstream's nine keys first, then our additions (docs/api/audit.md)."""
    return {
        "id": row.id,
        "user_id": row.user_id,
        "username": row.username,
        "action": row.action,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "description": row.description,
        "timestamp": iso_local(row.occurred_at, tz),
        "status": row.status,
        # additions
        "role": row.role,
        "ip_address": _ip(row.ip_address),
        "request_id": row.request_id,
        "event_type": row.event_type,
        "old_value": row.old_value,
        "new_value": row.new_value,
    }


def change(row: Row[Any], tz: ZoneInfo, old_value: Any, new_value: Any) -> dict[str, Any]:
    """An entity-trail entry: upstream's seven keys first, then our additions."""
    return {
        "user_id": row.user_id,
        "username": row.username,
        "action": row.action,
        "old_value": old_value,
        "new_value": new_value,
        "timestamp": iso_local(row.occurred_at, tz),
        "description": row.description,
        # additions
        "id": row.id,
        "status": row.status,
        "role": row.role,
        "ip_address": _ip(row.ip_address),
        "request_id": row.request_id,
        "event_type": row.event_type,
    }


def record_list(total: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total": total, "records": records}


def trail(
    entity_type: str, entity_id: int, total: int, changes: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"entity_type": entity_type, "entity_id": entity_id, "changes": changes, "total": total}
