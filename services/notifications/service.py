"""Rules of the notifications service. Never commits: the request or consumer boundary does.

Functions that change notifications return the ids of the users whose notifications changed;
the boundary publishes them to the live streams once its transaction has committed.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifications import repository, schemas
from services.notifications.events import notification_created, notification_deleted
from services.notifications.tables import outbox
from services.notifications.triggers import draft_for
from stockmanager.contracts import users_directory
from stockmanager.contracts.fields import BIGINT_MAX
from stockmanager.errors import NotFound, ValidationFailed
from stockmanager.events import Event, write_event
from stockmanager.identity import ROLE_ADMIN, ROLE_ROOT, Identity

UNREAD_LIMIT = 10
STREAM_INIT_LIMIT = 5
ALL_DEFAULT_LIMIT = 20
ALL_MAX_LIMIT = 100

NOT_FOUND = "Notificación no encontrada"


async def notify_from_events(conn: AsyncConnection, events: list[Event]) -> dict[str, set[int]]:
    """Create the notifications the domain events ask for (each recipient of an event gets
    exactly one), with one INSERT for the batch; the users notified, by event id."""
    drafts = [(event.id, draft) for event in events if (draft := draft_for(event)) is not None]
    admins: list[int] | None = None
    rows: list[repository.NewRow] = []
    touched: dict[str, set[int]] = {}
    for event_id, draft in drafts:
        recipients = dict.fromkeys(draft.user_ids)  # ordered and de-duplicated
        if draft.to_admins:
            if admins is None:  # one directory read per batch
                admins = await users_directory.active_user_ids(conn, roles=(ROLE_ADMIN, ROLE_ROOT))
            recipients.update(dict.fromkeys(admins))
        rows += [
            repository.NewRow(user_id, draft.title, draft.message, draft.type)
            for user_id in recipients
        ]
        touched[event_id] = set(recipients)
    await repository.insert_rows(conn, rows)
    return touched


async def notify_from_event(conn: AsyncConnection, event: Event) -> set[int]:
    """One event (see notify_from_events)."""
    return (await notify_from_events(conn, [event])).get(event.id, set())


async def unread(conn: AsyncConnection, user_id: int, limit: int, tz: ZoneInfo) -> dict[str, Any]:
    rows, count = await repository.unread_page(conn, user_id, limit)
    return {"notifications": [schemas.unread_item(row, tz) for row in rows], "count": count}


async def list_all(
    conn: AsyncConnection, user_id: int, *, offset: int, limit: int, tz: ZoneInfo
) -> list[dict[str, Any]]:
    rows = await repository.list_for_user(conn, user_id, offset=offset, limit=limit)
    return [schemas.full_item(row, tz) for row in rows]


async def mark_read(conn: AsyncConnection, user_id: int, notification_id: int) -> set[int]:
    if notification_id > BIGINT_MAX:
        raise NotFound(NOT_FOUND)
    changed = await repository.mark_read(conn, notification_id, user_id)
    if changed is None:  # another user's notification looks exactly like a missing one
        raise NotFound(NOT_FOUND)
    return {user_id} if changed else set()


async def mark_all_read(conn: AsyncConnection, user_id: int) -> set[int]:
    return {user_id} if await repository.mark_all_read(conn, user_id) else set()


async def create_manual(
    conn: AsyncConnection, caller: Identity, new: schemas.NewNotification
) -> set[int]:
    target = await users_directory.find_user(conn, new.user_id)
    if target is None:
        raise NotFound("Usuario no encontrado")
    if not target.is_active:
        raise ValidationFailed("El usuario no está activo")
    [notification_id] = await repository.insert_notifications(
        conn,
        [new.user_id],
        title=new.title,
        message=new.message,
        type_=new.type,
        action_url=new.action_url,
    )
    await write_event(conn, outbox, notification_created(caller, notification_id, new))
    return {new.user_id}


async def delete(conn: AsyncConnection, caller: Identity, notification_id: int) -> set[int]:
    if notification_id > BIGINT_MAX:
        raise NotFound(NOT_FOUND)
    row = await repository.delete_notification(conn, notification_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    await write_event(conn, outbox, notification_deleted(caller, row))
    return {int(row.user_id)}
