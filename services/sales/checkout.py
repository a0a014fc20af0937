"""The request boundary of the sale POSTs: one transaction on the checkout pool.

`POST /api/sales` and `POST /api/sales/bulk` run on a psycopg connection pool of their own
(`checkout_pool_size` connections), everything else on the kernel's SQLAlchemy engine. Per
sale, SQLAlchemy's pool checkout (with its pre-ping) and transaction handling cost more CPU than
the sale's own statements; a psycopg pool with explicit BEGIN/COMMIT costs a third of that
(bench/results/sales.md). Like `runtime.transaction()`, this boundary is the only place that
commits, and it pokes the outbox relay after the commit. A sale without an Idempotency-Key is
one statement (`sales.record_sale`, events included) run in autocommit: its own transaction,
one round trip, no BEGIN/COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.responses import Response

from services.sales import idempotency
from services.sales.repository_checkout import CheckoutConnection
from services.sales.runtime import SalesRuntime
from services.sales.settings import SalesSettings
from stockmanager.db import closed_by_server
from stockmanager.errors import ApiError, InternalError, ServiceUnavailable
from stockmanager.http import dumps

log = logging.getLogger("sales.checkout")

JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a sale action produced (its events already written): the HTTP answer, the sale."""

    status: int
    payload: dict[str, Any]
    sale_id: int | None


Action = Callable[[CheckoutConnection], Awaitable[Outcome]]


def libpq_url(url: str) -> str:
    """DATABASE_URL as libpq reads it (a SQLAlchemy driver suffix, if any, removed)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


async def open_pool(settings: SalesSettings) -> AsyncConnectionPool[CheckoutConnection]:
    pool: AsyncConnectionPool[CheckoutConnection] = AsyncConnectionPool(
        libpq_url(settings.database_url),
        min_size=min(2, settings.checkout_pool_size),
        max_size=settings.checkout_pool_size,
        timeout=settings.checkout_pool_timeout,
        # Transactions are explicit (see `transaction`): BEGIN doubles as the liveness check.
        kwargs={"autocommit": True, "application_name": "sales-checkout"},
        name="sales-checkout",
        open=False,
    )
    # Do not wait for the connections: readiness is the kernel's /readyz (PostgreSQL up).
    await pool.open(wait=False)
    return pool


@asynccontextmanager
async def transaction(
    pool: AsyncConnectionPool[CheckoutConnection],
) -> AsyncIterator[CheckoutConnection]:
    """A connection in a transaction: COMMIT when the block ends normally, ROLLBACK otherwise.

    The explicit BEGIN is also the connection's liveness check (instead of a separate ping
    round trip per checkout): a connection that died meanwhile (PostgreSQL restarted) fails on
    BEGIN, before anything happened, so another one is taken. Nothing is retried after BEGIN.
    """
    for _ in range(pool.max_size + 1):
        conn = await pool.getconn()
        try:
            await conn.execute("BEGIN")
        except psycopg.OperationalError:
            await pool.putconn(conn)  # broken: the pool discards it
            continue
        try:
            yield conn
        except BaseException:
            if not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")
            raise
        else:
            await conn.execute("COMMIT")
        finally:
            await pool.putconn(conn)
        return
    raise ServiceUnavailable()


@asynccontextmanager
async def single_statement(
    pool: AsyncConnectionPool[CheckoutConnection],
) -> AsyncIterator[CheckoutConnection]:
    """A connection for one statement in autocommit: that statement is the transaction.

    Instead of BEGIN as the liveness check (a round trip), a connection the server closed
    meanwhile (PostgreSQL restarted; it holds the FATAL message and EOF) is seen without one
    (`closed_by_server`: a poll() of its socket) and replaced. A connection that dies during
    the statement is an OperationalError (503): whether the database got the statement cannot
    be known then, so it is not retried; a client's retry with its Idempotency-Key is safe.
    """
    for _ in range(pool.max_size + 1):
        conn = await pool.getconn()
        try:
            closed = closed_by_server(conn.pgconn)
        except (OSError, ValueError, psycopg.Error):
            closed = True
        if closed:
            await conn.close()
            await pool.putconn(conn)  # closed: the pool discards it
            continue
        try:
            yield conn
        finally:
            await pool.putconn(conn)
        return
    raise ServiceUnavailable()


async def run_sale(
    runtime: SalesRuntime, claim: idempotency.Claim | None, action: Action
) -> Response:
    """Run `action` as one transaction, at most once per Idempotency-Key, and answer.

    Without a key the action's one statement runs in autocommit. With a key: BEGIN, the key
    is claimed first (a concurrent duplicate waits here, then replays), the action, the
    response stored in the same transaction, COMMIT.
    """
    pool = runtime.resources.checkout_pool
    try:
        if claim is None:
            async with single_statement(pool) as conn:
                outcome = await action(conn)
            body = dumps(outcome.payload)
        else:
            async with transaction(pool) as conn:
                stored = await idempotency.claim_or_replay(
                    conn, claim, runtime.settings.idempotency_ttl_seconds
                )
                if stored is not None:
                    return Response(
                        stored.body,
                        status_code=stored.status,
                        media_type=JSON_MEDIA_TYPE,
                        headers={idempotency.REPLAYED_HEADER: "true"},
                    )
                outcome = await action(conn)
                body = dumps(outcome.payload)
                await idempotency.remember(conn, claim, outcome.status, body, outcome.sale_id)
    except ApiError:
        raise
    except PoolTimeout as exc:
        raise ServiceUnavailable() from exc
    except psycopg.OperationalError as exc:
        # The connection died (database restarting, network): nothing was recorded, or the
        # commit's fate is unknown. 503 tells the client to retry, and the same Idempotency-Key
        # makes that retry safe either way.
        log.warning("checkout lost its database connection", exc_info=exc)
        raise ServiceUnavailable() from exc
    except psycopg.Error as exc:
        log.error("checkout database error", exc_info=exc)
        raise InternalError("Error en la base de datos") from exc
    _poke_relay_soon(runtime)
    return Response(body, status_code=outcome.status, media_type=JSON_MEDIA_TYPE)


def _poke_relay_soon(runtime: SalesRuntime) -> None:
    """Wake the outbox relay once per `relay_coalesce_seconds`, not once per sale.

    Each relay wake-up is a transaction of its own (claim rows, XADD, mark published); poked
    after every commit under a checkout load it published one sale's events at a time, about a
    tenth of the service's CPU. Sales committed within the window go out in one batch; the
    delay (10 ms by default) is far inside the notifications' 1 s budget.
    """
    relay = runtime.relay
    if relay is None:
        return
    delay = runtime.settings.relay_coalesce_seconds
    if delay <= 0:
        relay.poke()
        return
    resources = runtime.resources
    if resources.relay_poke_pending:
        return
    resources.relay_poke_pending = True

    def poke() -> None:
        resources.relay_poke_pending = False
        relay.poke()

    asyncio.get_running_loop().call_later(delay, poke)
