"""The one outbox writer (stockmanager.events.outbox) on both drivers, real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import MetaData, Table, text

from stockmanager.db import Database
from stockmanager.events import Event, new_event
from stockmanager.events import outbox as writer
from stockmanager.identity import Identity
from stockmanager.migration_ddl import event_tables_ddl

SCHEMA = "contracts_outbox_test"


def libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


@pytest_asyncio.fixture(scope="module")
async def outbox(db: Database) -> AsyncIterator[Table]:
    async with db.transaction() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        for statement in event_tables_ddl(SCHEMA).split(";"):
            if statement.strip():
                await conn.execute(text(statement))
        await conn.execute(text(f"CREATE TABLE {SCHEMA}.notes (note text)"))
    yield writer.outbox_table(MetaData(schema=SCHEMA))
    async with db.transaction() as conn:
        await conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


def events(*notes: str) -> list[Event]:
    caller = Identity(
        user_id=3, username="ana", role="admin", request_id="rq", ip="10.0.0.1", issued_at=0.0
    )
    return [
        new_event(
            "test.written",
            identity=caller,
            entity_type="thing",
            entity_id=index,
            data={"note": note, "nested": {"n": [1, 2]}},
            before=None,
            after={"note": note},
        )
        for index, note in enumerate(notes)
    ]


async def stored(db: Database, outbox: Table, ids: list[str]) -> list[tuple[str, str, Any]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT id, type, payload FROM {outbox.fullname} WHERE id = ANY(:ids) ORDER BY seq"
            ),
            {"ids": ids},
        )
        return [(str(row.id), row.type, row.payload) for row in rows]


async def test_both_drivers_write_the_same_rows_in_order(
    db: Database, migrated: str, outbox: Table
) -> None:
    by_sqlalchemy = events("a1", "a2", "a3")
    async with db.transaction() as conn:
        await writer.write_events(conn, outbox, by_sqlalchemy)
    by_psycopg = events("b1", "b2", "b3")
    async with await psycopg.AsyncConnection.connect(libpq(migrated)) as conn:
        await writer.write_events(conn, outbox, iter(by_psycopg))  # any iterable
        await conn.commit()

    for written in (by_sqlalchemy, by_psycopg):
        rows = await stored(db, outbox, [event.id for event in written])
        # The payload is the whole envelope, as the relay publishes it and consumers read it.
        assert rows == [(event.id, event.type, asdict(event)) for event in written]
        assert [Event(**payload) for _, _, payload in rows] == written


async def test_a_rolled_back_transaction_takes_its_events_with_it(
    db: Database, outbox: Table
) -> None:
    written = events("gone")

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.transaction() as conn:
            await writer.write_event(conn, outbox, written[0])
            raise Abort
    assert await stored(db, outbox, [written[0].id]) == []


def in_transaction(conn: psycopg.AsyncConnection[Any]) -> bool:
    return conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


async def test_nothing_to_write_runs_no_statement(migrated: str, outbox: Table) -> None:
    async with await psycopg.AsyncConnection.connect(libpq(migrated)) as conn:
        await writer.write_events(conn, outbox, [])
        # Any statement would have opened a transaction on this (non-autocommit) connection.
        assert not in_transaction(conn)
        await writer.write_events(conn, outbox, events("one"))
        assert in_transaction(conn)
        await conn.rollback()


async def test_the_statement_composes_with_a_callers_own_writes(
    db: Database, outbox: Table
) -> None:
    """As in a sale edit: the outbox insert closes a statement of data-modifying CTEs."""
    written = events("with-note")
    statement = text(
        f"WITH noted AS (INSERT INTO {SCHEMA}.notes (note) VALUES (:note))"
        f" {writer.insert_sql(outbox, 'sqlalchemy')}"
    )
    async with db.transaction() as conn:
        await conn.execute(
            statement, {"note": "with-note", writer.ROWS_PARAM: writer.rows_json(written)}
        )
    assert [row[0] for row in await stored(db, outbox, [written[0].id])] == [written[0].id]
    async with db.connect() as conn:
        notes = await conn.scalar(
            text(f"SELECT count(*) FROM {SCHEMA}.notes WHERE note = 'with-note'")
        )
    assert notes == 1
