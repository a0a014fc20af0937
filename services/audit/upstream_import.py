"""`stockmanager import-upstream`: the audit schema's part (docs/upgrading-from-stockmanager.md).

Upstream's audit entries become records of event type `upstream.history` (the mark of imported
history; `request_id` names the upstream row), append-only like every record. Each gets a
deterministic event id from the upstream database and row, so the unique event id makes a
second import write nothing. Runs in the import's one transaction; never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
import psycopg

from stockmanager.upstream import staging
from stockmanager.upstream.records import HistoryRecord
from stockmanager.upstream.report import Report

HISTORY_EVENT_TYPE: Final = "upstream.history"
_NAMESPACE: Final = uuid.UUID("6f1c1b9e-5a43-4c1e-9d0a-2b7f3c8e4d21")  # fixed: ids never change


def history_event_id(source: str, upstream_id: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{source}:audit_log:{upstream_id}"))


def _entity_id(
    entities: Mapping[str, Mapping[int, int]], entity_type: str, entity_id: int | None
) -> int | None:
    if entity_id is None:
        return None
    return entities.get(entity_type, {}).get(entity_id, entity_id)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def import_history(
    conn: psycopg.AsyncConnection[Any],
    source: str,
    history: Sequence[HistoryRecord],
    users: Mapping[int, tuple[int, str, str]],
    entities: Mapping[str, Mapping[int, int]],
    report: Report,
) -> None:
    """`users`: upstream user id -> (local id, username, role); `entities`: by entity type
    (user, product, sale, ...), upstream id -> local id, so an entity's trail (GET /api/entity)
    finds its imported history under the id it has here. Ids of other types stay as they were."""
    rows = []
    for h in history:
        user = users.get(h.user_upstream_id) if h.user_upstream_id is not None else None
        rows.append(
            (
                history_event_id(source, h.upstream_id),
                h.occurred_at,
                *(user if user is not None else (None, None, None)),
                h.action,
                h.entity_type,
                _entity_id(entities, h.entity_type, h.entity_id),
                _json(h.old_value),
                _json(h.new_value),
                h.description,
                h.ip_address,
                f"upstream-audit-{h.upstream_id}",
                h.status,
            )
        )
    await staging.stage(
        conn,
        "upstream_history",
        "event_id uuid, occurred_at timestamptz, user_id bigint, username text, role text,"
        " action text, entity_type text, entity_id bigint, old_value jsonb, new_value jsonb,"
        " description text, ip_address inet, request_id text, status text",
        rows,
    )
    cursor = await conn.execute(
        """
        INSERT INTO audit.audit_log (event_id, event_type, occurred_at, user_id, username, role,
                                     action, entity_type, entity_id, old_value, new_value,
                                     description, ip_address, request_id, status)
        SELECT event_id, %s, occurred_at, user_id, username, role, action, entity_type,
               entity_id, old_value, new_value, description, ip_address, request_id, status
          FROM upstream_history
        ON CONFLICT (event_id) DO NOTHING
        """,
        (HISTORY_EVENT_TYPE,),
    )
    counts = report.counts["audit_log"]
    counts.imported += cursor.rowcount
    counts.already += len(rows) - cursor.rowcount
