"""From an event envelope to one audit record (see builders.py for the per-type rules).

Every event on the stream is consumed; `product.stock_low` is the only type not recorded,
because it is a consequence of a change that is already audited (the sale or update that crossed
the threshold), not a change of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.audit.builders import BUILDERS, entity_of, generic_change
from services.audit.coerce import as_int, as_ip, as_text, as_time, as_token, clean, storable
from stockmanager.events import Event, EventType

log = logging.getLogger("audit.records")

NOT_AUDITED = frozenset({EventType.STOCK_LOW.value})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    event_id: str
    event_type: str
    occurred_at: datetime
    user_id: int | None
    username: str | None
    role: str | None
    action: str
    entity_type: str
    entity_id: int | None
    old_value: Any
    new_value: Any
    description: str
    ip_address: str | None
    request_id: str | None
    status: str

    def row(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__slots__}


def record_for(event: Event) -> AuditRecord | None:
    """The audit record of `event`, or None for the types that are not audited."""
    if event.type in NOT_AUDITED:
        return None
    try:
        change = BUILDERS.get(event.type, generic_change)(event)
    except ValidationError as exc:
        # Recorded all the same (an audit trail loses nothing), with the generic description.
        log.warning(
            "event payload does not match its contract",
            extra={"event_id": event.id, "type": event.type, "error": str(exc)},
        )
        change = generic_change(event)
    except Exception:
        log.exception("describing event failed", extra={"event_id": event.id})
        change = generic_change(event)
    entity_type, entity_id = entity_of(event)
    actor = event.actor if isinstance(event.actor, Mapping) else {}
    user_id = as_int(actor.get("id"))
    return AuditRecord(
        event_id=event.id,
        event_type=storable(str(event.type)[:64]),
        occurred_at=as_time(event.occurred_at),
        user_id=user_id,
        username=as_text(actor.get("username")) if user_id is not None else None,
        role=as_text(actor.get("role"), 20) if user_id is not None else None,
        action=as_token(change.action, 64, "event"),
        entity_type=entity_type,
        entity_id=entity_id,
        old_value=clean(change.old),
        new_value=clean(change.new),
        description=storable(change.description),
        ip_address=as_ip(event.ip),
        request_id=as_text(event.request_id or None),
        status="error" if event.status == "error" else "success",
    )
