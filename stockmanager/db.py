"""Async database access: one engine per process, one transaction scope per request or message.

Only the request or consumer boundary opens a transaction (and so commits); services and
repositories receive the open connection and never commit themselves.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from stockmanager.settings import DEFAULT_DB_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE, sqlalchemy_url

# psycopg SQLSTATE codes we translate into API errors.
UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_DB_POOL_SIZE,
        max_overflow: int = DEFAULT_DB_MAX_OVERFLOW,
    ) -> None:
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            # No pre-ping: it costs a round trip on every checkout. Instead each checkout asks
            # the kernel (poll, no round trip) whether the server closed the connection, as it
            # does when PostgreSQL restarts (`_replace_closed_connection`), so a restart costs
            # no request; a connection broken silently still fails the one request using it,
            # and SQLAlchemy then discards the whole pool (disconnect detection).
            pool_pre_ping=False,
            pool_recycle=1800,
        )
        event.listen(self.engine.sync_engine, "checkout", _replace_closed_connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Begin a transaction; commit when the block exits normally, roll back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for read-only work (autobegin; rolled back on exit)."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def pool_status(self) -> dict[str, int]:
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        size = getattr(pool, "size", lambda: 0)()
        return {"size": int(size), "checked_out": int(checked_out)}

    async def dispose(self) -> None:
        await self.engine.dispose()


def _replace_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout hook: an idle connection with something to read was closed by the server
    (after a restart or `pg_terminate_backend` it holds the FATAL message and EOF). Raising
    `DisconnectionError` makes the pool discard it and check out another (a new one if needed)."""
    pgconn = getattr(getattr(dbapi_connection, "driver_connection", None), "pgconn", None)
    if pgconn is None:
        return  # not psycopg: nothing to look at
    try:
        closed = closed_by_server(pgconn)
    except (OSError, ValueError, psycopg.Error) as exc:
        raise DisconnectionError(f"connection unusable: {exc}") from exc
    if closed:
        raise DisconnectionError("the server closed the connection")


def closed_by_server(pgconn: Any) -> bool:
    """An idle psycopg connection (`conn.pgconn`) with something to read was closed by the
    server: one poll() of its socket, no round trip (also the sales checkout pool's check).
    Raises (OSError, ValueError, psycopg.Error) when libpq already knows it is closed."""
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a DBAPI error wrapped by SQLAlchemy, if any."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None)
