"""Wire shapes of the audit service (reference §2.5), plus documented additions."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Row

from stockmanager.timefmt import iso_local


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
