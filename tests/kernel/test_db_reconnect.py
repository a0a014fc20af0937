"""A pooled connection the server closed (restart, pg_terminate_backend) costs no request."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

from stockmanager.db import Database


def terminate(url: str, pids: set[int]) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        for pid in pids:
            # With a timeout it waits until the backend is gone (PostgreSQL >= 14).
            row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
            assert row == (True,)


async def backend_pid(database: Database) -> int:
    async with database.transaction() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def test_connections_closed_by_the_server_are_replaced_at_checkout(migrated: str) -> None:
    database = Database(migrated, pool_size=2, max_overflow=0)
    try:
        # Two connections in the pool, both idle.
        async with database.connect() as first, database.connect() as second:
            pids = {
                int(await first.scalar(text("SELECT pg_backend_pid()"))),
                int(await second.scalar(text("SELECT pg_backend_pid()"))),
            }
        assert len(pids) == 2 and database.pool_status()["size"] == 2
        terminate(migrated, pids)  # what a PostgreSQL restart does to every pooled connection

        # Every request after it succeeds: no error reaches a caller, each gets a new backend.
        async with database.transaction() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
        async with database.connect() as one, database.connect() as two:
            fresh = {
                int(await one.scalar(text("SELECT pg_backend_pid()"))),
                int(await two.scalar(text("SELECT pg_backend_pid()"))),
            }
        assert fresh.isdisjoint(pids)
    finally:
        await database.dispose()


async def test_a_healthy_pooled_connection_is_reused(migrated: str) -> None:
    database = Database(migrated, pool_size=1, max_overflow=0)
    try:
        first = await backend_pid(database)
        assert await backend_pid(database) == first  # the checkout check keeps live ones
    finally:
        await database.dispose()
