"""The users directory: the read-only view `users.directory` the users service publishes.

Other services read usernames, e-mails, roles and whether an account is active from it, never
from `users.users`. Its columns are a contract (add, never rename or remove):
`id, username, email, role, status, application, created_at`.

An account is *active* when it is enabled (`status` 1) and its application was accepted; a
pending or rejected registration is not active even if an admin set its status. `is_active` /
`active_clause` / `ACTIVE_SQL` are that one rule, for Python, SQLAlchemy and raw SQL; the users
service applies the same rule to its own table (login, password reset, vendor suggestions).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

ENABLED: Final = 1
"""`status` of an enabled account (0: disabled)."""

ACCEPTED: Final = "accepted"
"""`application` of an account that may work (also: `pending`, `rejected`)."""

ACTIVE_SQL: Final = f"status = {ENABLED} AND application = '{ACCEPTED}'"
"""The active rule as a raw SQL condition on the view's (or `users.users`') columns."""

metadata = MetaData(schema="users")

directory = Table(
    "directory",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", String(30), nullable=False),
    Column("email", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("application", String(10), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def is_active(status: int, application: str) -> bool:
    return status == ENABLED and application == ACCEPTED


def active_clause(table: Any = directory) -> ColumnElement[bool]:
    """The active rule on any table or view with `status` and `application` columns."""
    return and_(table.c.status == ENABLED, table.c.application == ACCEPTED)


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    id: int
    username: str
    email: str
    role: str
    status: int
    application: str
    created_at: datetime

    @property
    def is_active(self) -> bool:
        return is_active(self.status, self.application)


def _user(row: Any) -> DirectoryUser:
    return DirectoryUser(
        id=row.id,
        username=row.username,
        email=row.email,
        role=row.role,
        status=row.status,
        application=row.application,
        created_at=row.created_at,
    )


async def find_user(conn: AsyncConnection, user_id: int) -> DirectoryUser | None:
    row = (await conn.execute(select(directory).where(directory.c.id == user_id))).first()
    return None if row is None else _user(row)


async def active_user_ids(
    conn: AsyncConnection, *, roles: Collection[str] | None = None
) -> list[int]:
    """Ids of the active accounts (of `roles`, when given), ascending."""
    query = select(directory.c.id).where(active_clause())
    if roles is not None:
        query = query.where(directory.c.role.in_(list(roles)))
    result = await conn.execute(query.order_by(directory.c.id))
    return [int(user_id) for user_id in result.scalars()]
