"""The users directory reader (stockmanager.contracts.users_directory), real PostgreSQL.

Accounts are inserted into `users.users` inside a transaction rolled back after each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.contracts import users_directory
from stockmanager.contracts.users_directory import DirectoryUser, directory
from stockmanager.db import Database
from tests.support.stack import unique


@pytest_asyncio.fixture
async def conn(db: Database) -> AsyncIterator[AsyncConnection]:
    async with db.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


async def add_user(
    conn: AsyncConnection, *, role: str = "vendedor", status: int = 1, application: str = "accepted"
) -> int:
    user_id = await conn.scalar(
        text(
            "INSERT INTO users.users (username, email, password_hash, role, status, application)"
            " VALUES (:username, :email, 'x', :role, :status, :application) RETURNING id"
        ),
        {
            "username": (name := unique("dir")),
            "email": f"{name}@example.test",
            "role": role,
            "status": status,
            "application": application,
        },
    )
    assert isinstance(user_id, int)
    return user_id


ACCOUNTS = {
    "active": (1, "accepted", True),
    "disabled": (0, "accepted", False),
    "enabled_but_pending": (1, "pending", False),  # an admin set the status of an applicant
    "pending": (0, "pending", False),
    "rejected": (0, "rejected", False),
}


async def test_find_user_gives_a_typed_row_with_whether_it_is_active(
    conn: AsyncConnection,
) -> None:
    for status, application, active in ACCOUNTS.values():
        user_id = await add_user(conn, role="admin", status=status, application=application)
        found = await users_directory.find_user(conn, user_id)
        assert isinstance(found, DirectoryUser)
        assert (found.id, found.role, found.status, found.application) == (
            user_id,
            "admin",
            status,
            application,
        )
        assert found.username.startswith("dir") and found.email.endswith("@example.test")
        assert found.is_active is active
    assert await users_directory.find_user(conn, 2**62) is None


async def test_the_rule_is_the_same_in_python_sqlalchemy_and_raw_sql(
    conn: AsyncConnection,
) -> None:
    ids = {
        name: await add_user(conn, status=status, application=application)
        for name, (status, application, _) in ACCOUNTS.items()
    }
    expected = {ids[name] for name, (_, _, active) in ACCOUNTS.items() if active}
    mine = list(ids.values())
    by_clause = set(
        (
            await conn.execute(
                select(directory.c.id).where(
                    users_directory.active_clause(), directory.c.id.in_(mine)
                )
            )
        ).scalars()
    )
    by_sql = set(
        (
            await conn.execute(
                text(
                    "SELECT id FROM users.directory"
                    f" WHERE {users_directory.ACTIVE_SQL} AND id = ANY(:ids)"
                ),
                {"ids": mine},
            )
        ).scalars()
    )
    found = [await users_directory.find_user(conn, user_id) for user_id in mine]
    by_python = {user.id for user in found if user is not None and user.is_active}
    assert by_clause == by_sql == by_python == expected


async def test_active_user_ids_of_some_roles(conn: AsyncConnection) -> None:
    # (No root here: there is one root account at most, and other tests may have made it.)
    admin = await add_user(conn, role="admin")
    seller = await add_user(conn, role="vendedor")
    disabled = await add_user(conn, role="admin", status=0)
    applicant = await add_user(conn, role="admin", status=1, application="pending")
    admins = await users_directory.active_user_ids(conn, roles=("admin", "root"))
    assert admin in admins
    assert not {seller, disabled, applicant} & set(admins)
    assert admins == sorted(admins)
    everyone = await users_directory.active_user_ids(conn)
    assert {admin, seller} <= set(everyone)
    inactive = set(
        (
            await conn.execute(
                text(
                    "SELECT id FROM users.users WHERE NOT (status = 1 AND application = 'accepted')"
                )
            )
        ).scalars()
    )
    assert not inactive & set(everyone)


async def test_the_declared_columns_are_the_published_views(conn: AsyncConnection) -> None:
    """The contract's table must not name a column the users schema does not publish."""
    published = (
        await conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'users' AND table_name = 'directory'"
            )
        )
    ).scalars()
    assert {column.name for column in directory.columns} <= set(published)
