"""All SQL on `users.users` (accounts, registrations, applications)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.users.tables import users
from stockmanager.contracts.users_directory import active_clause
from stockmanager.db import UNIQUE_VIOLATION, sqlstate
from stockmanager.sqltext import LIKE_ESCAPE, like_contains

# Every column but the password hash: what the API and the events may show.
PUBLIC_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.email,
    users.c.role,
    users.c.status,
    users.c.application,
    users.c.created_at,
)

# Unique indexes of users.users, by what they protect.
USERNAME_INDEX = "ux_users_username_lower"
EMAIL_INDEX = "ux_users_email_lower"
SINGLE_ROOT_INDEX = "ux_users_single_root"


class DuplicateAccount(Exception):
    """A unique index refused the write; `index` names which one."""

    def __init__(self, index: str | None) -> None:
        super().__init__(index)
        self.index = index


def _duplicate(exc: IntegrityError) -> DuplicateAccount | None:
    if sqlstate(exc) != UNIQUE_VIOLATION:
        return None
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    return DuplicateAccount(getattr(diag, "constraint_name", None))


async def find_by_login(conn: AsyncConnection, identifier: str) -> Any | None:
    """A user by username or e-mail, case-insensitively (both are unique that way)."""
    needle = identifier.strip().lower()
    return (
        await conn.execute(
            select(users)
            .where(or_(func.lower(users.c.username) == needle, func.lower(users.c.email) == needle))
            .limit(1)
        )
    ).first()


async def find_by_email(conn: AsyncConnection, email: str) -> Any | None:
    return (
        await conn.execute(
            select(*PUBLIC_COLUMNS).where(func.lower(users.c.email) == email.strip().lower())
        )
    ).first()


async def get_user(conn: AsyncConnection, user_id: int, *, for_update: bool = False) -> Any | None:
    query = select(*PUBLIC_COLUMNS).where(users.c.id == user_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def get_password_hash(conn: AsyncConnection, user_id: int) -> str | None:
    return await conn.scalar(select(users.c.password_hash).where(users.c.id == user_id))


async def taken(
    conn: AsyncConnection, *, username: str | None, email: str | None, exclude_id: int | None
) -> tuple[bool, bool]:
    """Whether another account already uses this username / e-mail (case-insensitively)."""
    checks = []
    if username is not None:
        checks.append(func.lower(users.c.username) == username.lower())
    if email is not None:
        checks.append(func.lower(users.c.email) == email.lower())
    if not checks:
        return False, False
    query = select(users.c.username, users.c.email).where(or_(*checks))
    if exclude_id is not None:
        query = query.where(users.c.id != exclude_id)
    rows = (await conn.execute(query)).all()
    username_taken = username is not None and any(
        row.username.lower() == username.lower() for row in rows
    )
    email_taken = email is not None and any(row.email.lower() == email.lower() for row in rows)
    return username_taken, email_taken


async def root_exists(conn: AsyncConnection, *, exclude_id: int | None = None) -> bool:
    query = select(func.count()).where(users.c.role == "root")
    if exclude_id is not None:
        query = query.where(users.c.id != exclude_id)
    return bool(await conn.scalar(query))


async def insert_user(
    conn: AsyncConnection,
    *,
    username: str,
    email: str,
    password_hash: str,
    role: str,
    status: int,
    application: str,
) -> Any:
    """Insert an account; a unique index refusing it raises DuplicateAccount."""
    statement = (
        insert(users)
        .values(
            username=username,
            email=email,
            password_hash=password_hash,
            role=role,
            status=status,
            application=application,
        )
        .returning(*PUBLIC_COLUMNS)
    )
    try:
        return (await conn.execute(statement)).one()
    except IntegrityError as exc:
        duplicate = _duplicate(exc)
        if duplicate is None:
            raise
        raise duplicate from exc


async def update_user(conn: AsyncConnection, user_id: int, values: dict[str, Any]) -> Any:
    statement = (
        update(users)
        .where(users.c.id == user_id)
        .values(**values, updated_at=func.now())
        .returning(*PUBLIC_COLUMNS)
    )
    try:
        return (await conn.execute(statement)).one()
    except IntegrityError as exc:
        duplicate = _duplicate(exc)
        if duplicate is None:
            raise
        raise duplicate from exc


async def set_password_hash(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=func.now())
    )


async def replace_password_hash(
    conn: AsyncConnection, user_id: int, *, old_hash: str, new_hash: str
) -> bool:
    """Compare-and-set: False when the stored hash is no longer the one that was verified."""
    changed = await conn.scalar(
        update(users)
        .where(users.c.id == user_id, users.c.password_hash == old_hash)
        .values(password_hash=new_hash, updated_at=func.now())
        .returning(users.c.id)
    )
    return changed is not None


async def list_users(
    conn: AsyncConnection, *, search: str | None, status: int | None, offset: int, limit: int
) -> tuple[list[Any], int]:
    conditions = []
    if search:
        pattern = like_contains(search)
        conditions.append(
            or_(
                users.c.username.ilike(pattern, escape=LIKE_ESCAPE),
                users.c.email.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    if status is not None:
        conditions.append(users.c.status == status)
    total = await conn.scalar(select(func.count()).select_from(users).where(*conditions)) or 0
    rows = (
        await conn.execute(
            select(*PUBLIC_COLUMNS)
            .where(*conditions)
            .order_by(users.c.created_at.desc(), users.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return list(rows), int(total)


async def suggest_vendors(conn: AsyncConnection, term: str, limit: int = 10) -> list[Any]:
    pattern = like_contains(term)
    rows = await conn.execute(
        select(users.c.id, users.c.username, users.c.email)
        .where(
            active_clause(users),
            users.c.role.in_(("vendedor", "admin")),
            or_(
                users.c.username.ilike(pattern, escape=LIKE_ESCAPE),
                users.c.email.ilike(pattern, escape=LIKE_ESCAPE),
            ),
        )
        .order_by(func.lower(users.c.username), users.c.id)
        .limit(limit)
    )
    return list(rows.all())


async def list_pending(conn: AsyncConnection, *, offset: int, limit: int) -> tuple[list[Any], int]:
    pending = users.c.application == "pending"
    total = await conn.scalar(select(func.count()).select_from(users).where(pending)) or 0
    rows = (
        await conn.execute(
            select(users.c.id, users.c.username, users.c.email, users.c.created_at)
            .where(pending)
            .order_by(users.c.created_at.desc(), users.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return list(rows), int(total)


async def decide_application(
    conn: AsyncConnection, user_id: int, *, application: str, status: int
) -> Any | None:
    """Settle a *pending* application; None when it is not pending (or does not exist).

    The condition is in the UPDATE itself, so of two concurrent decisions exactly one wins.
    """
    return (
        await conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.application == "pending")
            .values(application=application, status=status, updated_at=func.now())
            .returning(*PUBLIC_COLUMNS)
        )
    ).first()


async def insert_root(
    conn: AsyncConnection, *, username: str, email: str, password_hash: str
) -> int | None:
    """Insert the root account unless one exists (the partial unique index arbitrates races)."""
    created: int | None = await conn.scalar(
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
    return created
