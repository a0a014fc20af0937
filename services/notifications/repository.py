"""All SQL of the notifications service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, delete, func, insert, over, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifications.tables import notifications
from stockmanager.http import dumps

_LIST_COLUMNS = (
    notifications.c.id,
    notifications.c.title,
    notifications.c.message,
    notifications.c.type,
    notifications.c.action_url,
    notifications.c.created_at,
)
_NEWEST_FIRST = (notifications.c.created_at.desc(), notifications.c.id.desc())


class NewRow(NamedTuple):
    user_id: int
    title: str
    message: str | None
    type: str
    action_url: str | None = None


# A batch of notifications in one statement: one JSON array parameter (array order = id order).
_INSERT_ROWS = text(
    f"""
    INSERT INTO {notifications.fullname} (user_id, title, message, type, action_url)
    SELECT r.user_id, r.title, r.message, r.type, r.action_url
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS e(doc, n)
     CROSS JOIN LATERAL jsonb_populate_record(NULL::{notifications.fullname}, e.doc) AS r
     ORDER BY e.n
    """
)


async def insert_rows(conn: AsyncConnection, rows: Sequence[NewRow]) -> None:
    if rows:
        await conn.execute(_INSERT_ROWS, {"rows": dumps([row._asdict() for row in rows]).decode()})


async def insert_notifications(
    conn: AsyncConnection,
    user_ids: Iterable[int],
    *,
    title: str,
    message: str | None,
    type_: str,
    action_url: str | None = None,
) -> list[int]:
    rows = [
        {
            "user_id": user_id,
            "title": title,
            "message": message,
            "type": type_,
            "action_url": action_url,
        }
        for user_id in user_ids
    ]
    if not rows:
        return []
    result = await conn.execute(insert(notifications).returning(notifications.c.id), rows)
    return [row.id for row in result]


async def unread_page(conn: AsyncConnection, user_id: int, limit: int) -> tuple[list[Any], int]:
    """The newest `limit` unread notifications and the total unread count, in one round trip
    (the window count is computed before LIMIT applies)."""
    rows = (
        await conn.execute(
            select(*_LIST_COLUMNS, over(func.count()).label("total"))
            .where(notifications.c.user_id == user_id, notifications.c.is_read.is_(False))
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
        )
    ).all()
    return list(rows), (int(rows[0].total) if rows else 0)


async def list_for_user(
    conn: AsyncConnection, user_id: int, *, offset: int, limit: int
) -> Sequence[Any]:
    return (
        await conn.execute(
            select(*_LIST_COLUMNS, notifications.c.is_read)
            .where(notifications.c.user_id == user_id)
            .order_by(*_NEWEST_FIRST)
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def mark_read(conn: AsyncConnection, notification_id: int, user_id: int) -> bool | None:
    """Mark one of the user's notifications read. None: not the user's (or no such id);
    True: it was unread; False: it was already read."""
    changed = await conn.scalar(
        update(notifications)
        .where(
            notifications.c.id == notification_id,
            notifications.c.user_id == user_id,
            notifications.c.is_read.is_(False),
        )
        .values(is_read=True)
        .returning(notifications.c.id)
    )
    if changed is not None:
        return True
    exists = await conn.scalar(
        select(notifications.c.id).where(
            notifications.c.id == notification_id, notifications.c.user_id == user_id
        )
    )
    return False if exists is not None else None


async def mark_all_read(conn: AsyncConnection, user_id: int) -> int:
    result = await conn.execute(
        update(notifications)
        .where(and_(notifications.c.user_id == user_id, notifications.c.is_read.is_(False)))
        .values(is_read=True)
    )
    return int(result.rowcount or 0)


async def delete_notification(conn: AsyncConnection, notification_id: int) -> Any | None:
    return (
        await conn.execute(
            delete(notifications)
            .where(notifications.c.id == notification_id)
            .returning(
                notifications.c.id,
                notifications.c.user_id,
                notifications.c.title,
                notifications.c.message,
                notifications.c.type,
                notifications.c.action_url,
                notifications.c.is_read,
            )
        )
    ).first()
