"""The audit table at the database level: append-only for every role, one row per event id.

Every destructive attempt runs inside a transaction that is rolled back, so even if a guard
were missing the shared table would be left intact for the other tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.db import Database

INSERT = text(
    "INSERT INTO audit.audit_log (event_id, event_type, occurred_at, action, entity_type,"
    " description, status) VALUES (:id, 'test.append_only', now(), 'create', 'product',"
    " 'original', 'success')"
)


@pytest_asyncio.fixture
async def event_id(db: Database) -> str:
    value = str(uuid.uuid4())
    async with db.transaction() as conn:
        await conn.execute(INSERT, {"id": value})
    return value


@pytest_asyncio.fixture
async def scratch(db: Database) -> AsyncIterator[AsyncConnection]:
    """A connection whose transaction is always rolled back."""
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


async def attempt(conn: AsyncConnection, sql: str, **params: object) -> str:
    """Run `sql` in a savepoint; return the error message (the test fails if none)."""
    savepoint = await conn.begin_nested()
    try:
        await conn.execute(text(sql), params)
    except DBAPIError as exc:
        await savepoint.rollback()
        return str(exc.orig)
    await savepoint.rollback()
    raise AssertionError(f"{sql!r} was allowed on the audit table")


async def description_of(db: Database, event_id: str) -> str | None:
    async with db.connect() as conn:
        return await conn.scalar(
            text("SELECT description FROM audit.audit_log WHERE event_id = :id"), {"id": event_id}
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit.audit_log SET description = 'tampered' WHERE event_id = :id",
        "DELETE FROM audit.audit_log WHERE event_id = :id",
        "TRUNCATE audit.audit_log",
        # A statement that matches no row is refused too (statement-level trigger).
        "DELETE FROM audit.audit_log WHERE false AND event_id = :id",
        "INSERT INTO audit.audit_log (event_id, event_type, occurred_at, action, entity_type,"
        " description, status) VALUES (:id, 'x', now(), 'create', 'product', 'dup', 'success')"
        " ON CONFLICT (event_id) DO UPDATE SET description = 'tampered'",
    ],
)
async def test_changes_are_refused_for_the_owner(
    db: Database, scratch: AsyncConnection, event_id: str, statement: str
) -> None:
    # The services and this fixture connect with the same (owner, superuser) role.
    message = await attempt(scratch, statement, id=event_id)
    assert "append-only" in message
    assert await description_of(db, event_id) == "original"


async def test_refused_with_replication_role_and_for_other_roles(
    db: Database, scratch: AsyncConnection, event_id: str
) -> None:
    # session_replication_role = replica disables ordinary triggers; ours is ENABLE ALWAYS.
    await scratch.execute(text("SET LOCAL session_replication_role = replica"))
    message = await attempt(
        scratch, "DELETE FROM audit.audit_log WHERE event_id = :id", id=event_id
    )
    assert "append-only" in message
    await scratch.execute(text("SET LOCAL session_replication_role = origin"))

    # A role that was granted everything on the table still cannot change it.
    role = f"audit_probe_{uuid.uuid4().hex[:8]}"
    await scratch.execute(text(f"CREATE ROLE {role}"))
    await scratch.execute(text(f"GRANT USAGE ON SCHEMA audit TO {role}"))
    await scratch.execute(text(f"GRANT ALL ON audit.audit_log TO {role}"))
    await scratch.execute(text(f"SET LOCAL ROLE {role}"))
    for statement in (
        "UPDATE audit.audit_log SET status = 'error' WHERE event_id = :id",
        "DELETE FROM audit.audit_log WHERE event_id = :id",
    ):
        assert "append-only" in await attempt(scratch, statement, id=event_id)
    assert await description_of(db, event_id) == "original"


async def test_one_row_per_event_id(db: Database, event_id: str) -> None:
    with pytest.raises(IntegrityError) as raised:
        async with db.transaction() as conn:
            await conn.execute(INSERT, {"id": event_id})
    assert "ux_audit_log_event_id" in str(raised.value.orig)
    async with db.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM audit.audit_log WHERE event_id = :id"), {"id": event_id}
        )
    assert count == 1


async def test_indexes_cover_the_list_filters(db: Database) -> None:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'audit'"
                " AND tablename = 'audit_log'"
            )
        )
        indexes = {row.indexname: row.indexdef for row in rows}
    assert "(occurred_at DESC, id DESC)" in indexes["ix_audit_log_time"]
    assert "(user_id, occurred_at DESC, id DESC)" in indexes["ix_audit_log_user_time"]
    assert "(action, occurred_at DESC, id DESC)" in indexes["ix_audit_log_action_time"]
    assert "(entity_type, entity_id, occurred_at, id)" in indexes["ix_audit_log_entity_time"]
    assert "UNIQUE" in indexes["ux_audit_log_event_id"]
