"""All SQL of the users service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.users.tables import users


async def find_by_login(conn: AsyncConnection, identifier: str) -> Any | None:
    """A user by username or e-mail, case-insensitively (both are unique that way)."""
    needle = identifier.strip().lower()
    return (
        await conn.execute(
            select(users).where(
                or_(func.lower(users.c.username) == needle, func.lower(users.c.email) == needle)
            ).limit(1)
        )
    ).first()


async def set_password_hash(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=password_hash)
    )


async def root_exists(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(select(func.count()).where(users.c.role == "root")))


async def insert_root(
    conn: AsyncConnection, *, username: str, email: str, password_hash: str
) -> int | None:
    """Insert the root account unless one exists (the partial unique index arbitrates races)."""
    return await conn.scalar(
        insert(users)
        .values(
            username=username,
            email=email,
            password_hash=password_hash,
            role="root",
            status=1,
            application="accepted",
        )
        .on_conflict_do_nothing()
        .returning(users.c.id)
    )
