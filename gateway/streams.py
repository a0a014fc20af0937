"""Live streams (SSE) through the gateway: admission limits and the session watch.

A stream holds a connection (client → gateway → service) for as long as the client listens, so
the gateway admits at most `sse_max_streams_per_user` streams per user, counted across every
gateway replica in Redis, and at most `sse_max_streams` per gateway process (also the size of
the proxy's stream connection pool). Over either limit the answer is 429 with a JSON error.

Each user's streams are leases in a Redis sorted set (member: stream id, score: expiry). An open
stream renews its lease whenever it checks its session; a gateway that dies leaves leases that
expire by themselves, so a crash never locks a user out for longer than the lease.

While a stream is open the gateway checks its session every `sse_session_check_seconds`: a
session ended by logout, by the user being disabled or by a password change (the gateway's event
consumer deletes it) ends the stream at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

import anyio
from redis.asyncio import Redis
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.runtime import RequestContext
from gateway.sessions import Session, SessionStore
from stockmanager.errors import RateLimited

log = logging.getLogger("gateway")

TOO_MANY_STREAMS = "Demasiadas conexiones en vivo abiertas. Cierra alguna e intenta de nuevo"
RETRY_AFTER_SECONDS = 5
_KEY = "sm:sse-streams:"

# Atomic admission: drop expired leases, refuse at the limit, else add this one.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamLimits:
    """The admission limits of one gateway process."""

    def __init__(
        self,
        redis: Redis,
        *,
        per_user: int,
        per_process: int,
        check_seconds: float,
    ) -> None:
        self.redis = redis
        self.per_user = per_user
        self.per_process = per_process
        self.check_seconds = check_seconds
        # A lease outlives a few missed renewals, never a dead gateway by much.
        self.lease_seconds = max(30.0, 3 * check_seconds)
        self.open_streams = 0
        self._acquire = redis.register_script(_ACQUIRE)

    def refused(self) -> RateLimited:
        return RateLimited(TOO_MANY_STREAMS, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    async def admit(self, user_id: int) -> str:
        """A lease for one more stream of this user, or RateLimited."""
        if self.open_streams >= self.per_process:
            raise self.refused()
        self.open_streams += 1  # before any await: concurrent admissions see it
        lease = uuid.uuid4().hex
        try:
            now = time.time()
            admitted = await self._acquire(
                keys=[f"{_KEY}{user_id}"],
                args=[now, now + self.lease_seconds, self.per_user, lease, int(self.lease_seconds)],
            )
        except BaseException:
            self.open_streams -= 1
            raise
        if not admitted:
            self.open_streams -= 1
            raise self.refused()
        return lease

    async def renew(self, user_id: int, lease: str) -> None:
        key = f"{_KEY}{user_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {lease: time.time() + self.lease_seconds}, xx=True)
            pipe.expire(key, int(self.lease_seconds))
            await pipe.execute()

    async def release(self, user_id: int, lease: str) -> None:
        self.open_streams -= 1
        try:
            await self.redis.zrem(f"{_KEY}{user_id}", lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            log.warning("could not release a stream lease", extra={"error": repr(exc)})


class WatchedStream(StreamingResponse):
    """A proxied stream that ends when its session ends, and frees its lease however it ends
    (normal end, client gone, session revoked, error)."""

    def __init__(
        self,
        source: AsyncIterator[bytes],
        *,
        status_code: int,
        headers: dict[str, str],
        limits: StreamLimits,
        sessions: SessionStore,
        session: Session,
        lease: str,
    ) -> None:
        self.source = source
        self.limits = limits
        self.sessions = sessions
        self.session = session
        self.lease = lease
        self.released = False
        super().__init__(self._watched(), status_code=status_code, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        if self.released:
            return
        self.released = True
        for iterator in (self.body_iterator, self.source):
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await self.limits.release(self.session.user_id, self.lease)

    async def _session_alive(self) -> bool:
        try:
            if not await self.sessions.alive(self.session):
                return False
            await self.limits.renew(self.session.user_id, self.lease)
        except Exception as exc:  # noqa: BLE001 - without Redis no session can be vouched for
            log.warning("stream session check failed", extra={"error": repr(exc)})
            return False
        return True

    async def _watched(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        interval = self.limits.check_seconds
        next_check = loop.time() + interval
        pending: asyncio.Future[bytes] | None = None
        try:
            while True:
                if loop.time() >= next_check:
                    if not await self._session_alive():
                        return
                    next_check = loop.time() + interval
                if pending is None:
                    pending = asyncio.ensure_future(anext(self.source))
                done, _ = await asyncio.wait({pending}, timeout=max(0.0, next_check - loop.time()))
                if pending not in done:
                    continue
                finished, pending = pending, None
                try:
                    chunk = finished.result()
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


async def proxy_stream(
    ctx: RequestContext, service: str, path_qs: str, headers: dict[str, str]
) -> StreamingResponse:
    """Admit, forward and watch one stream (the route needs a session: ctx.session is set)."""
    session = ctx.session
    assert session is not None
    limits: StreamLimits = ctx.request.app.state.streams
    lease = await limits.admit(session.user_id)
    try:
        upstream = await ctx.runtime.proxy.forward(
            service, ctx.request.method, path_qs, headers, ctx.body, stream=True
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await limits.release(session.user_id, lease)
        raise
    assert upstream.stream is not None
    return WatchedStream(
        upstream.stream,
        status_code=upstream.status,
        headers=dict(upstream.headers),
        limits=limits,
        sessions=ctx.runtime.sessions,
        session=session,
        lease=lease,
    )
