"""All SQL on `users.settings` (stored overrides of the whitelisted business settings)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.users.tables import settings


async def stored_values(conn: AsyncConnection) -> dict[str, Any]:
    rows = await conn.execute(select(settings.c.key, settings.c.value))
    return {row.key: row.value for row in rows}


async def stored_value(conn: AsyncConnection, key: str) -> tuple[bool, Any]:
    """(found, value) for one key, as stored."""
    row = (await conn.execute(select(settings.c.value).where(settings.c.key == key))).first()
    return (False, None) if row is None else (True, row.value)


async def replace_value(
    conn: AsyncConnection, key: str, value: Any, *, updated_by: int | None
) -> tuple[bool, Any]:
    """Store `value` for `key`; returns the (found, value) it had before.

    The previous value is read under a row lock (or the insert wins the race), so two concurrent
    writers each see the value the other replaced and the events tell a consistent story.
    """
    before = (
        await conn.execute(select(settings.c.value).where(settings.c.key == key).with_for_update())
    ).first()
    statement = insert(settings).values(key=key, value=value, updated_by=updated_by)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[settings.c.key],
            set_={
                "value": statement.excluded.value,
                "updated_at": func.now(),
                "updated_by": statement.excluded.updated_by,
            },
        )
    )
    return (False, None) if before is None else (True, before.value)
