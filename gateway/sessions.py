"""Server-side sessions in Redis, shared by every gateway replica.

The cookie holds a random 256-bit token; Redis keys hold only its SHA-256, so a Redis dump
cannot be replayed as cookies. A session is one JSON string so that the per-request lookup is
a single GETEX (read and refresh the idle timer), not a pipeline, and most requests not even
that: a session just read is kept for up to a second in the process (gateway/session_cache.py),
and every change below that ends or alters sessions publishes an invalidation in the same MULTI.
Idle expiry is the key's TTL; the absolute lifetime is checked against the creation time. Each
user's session hashes are indexed so that disabling a user or changing a password can end all of
them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.session_cache import CHANNEL, SessionCache, key_message, user_message

_PREFIX = "sm:session:"
_USER_INDEX = "sm:user-sessions:"


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    user_id: int
    username: str
    role: str
    created_at: float


# A GETEX in flight for one session key, and the cache generation it started at.
SharedRead = tuple[int, "asyncio.Future[Session | None]"]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _text(value: bytes | str) -> str:
    """A Redis reply as text (the client does not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


class SessionStore:
    def __init__(
        self,
        redis: Redis,
        *,
        idle_timeout: int,
        absolute_timeout: int,
        cache: SessionCache | None = None,
    ) -> None:
        self.redis = redis
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        # No cache (tests, tools): every lookup reads Redis.
        self.cache = cache or SessionCache(0)
        self._reads: dict[str, SharedRead] = {}

    async def create(self, user_id: int, username: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        key = _hash(token)
        record = {
            "user_id": user_id,
            "username": username,
            "role": role,
            "created_at": round(time.time(), 3),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_PREFIX + key, orjson.dumps(record), ex=self.idle_timeout)
            pipe.sadd(f"{_USER_INDEX}{user_id}", key)
            pipe.expire(f"{_USER_INDEX}{user_id}", self.absolute_timeout)
            await pipe.execute()
        return token

    async def get(self, token: str) -> Session | None:
        """The live session for a cookie token, refreshing its idle timer: from the process's
        cache when it was read within the last `cache.ttl` seconds, else one GETEX."""
        if not token or len(token) > 200:
            return None
        key = _hash(token)
        cached = self.cache.get(key)
        if cached is not None and time.time() - cached.created_at <= self.absolute_timeout:
            return cached
        if not self.cache.ttl:
            return await self._read(key, self.cache.generation)
        # One read per session at a time: when a cached copy expires under concurrent requests,
        # they share the read instead of each sending a GETEX (as if they all had read it then).
        # Only a read started since the latest invalidation is shared: a request arriving after a
        # logout must not get the answer of a read that began before it.
        generation = self.cache.generation
        shared = self._reads.get(key)
        if shared is None or shared[0] != generation:
            shared = (generation, asyncio.ensure_future(self._read(key, generation)))
            self._reads[key] = shared
            shared[1].add_done_callback(functools.partial(self._read_done, key, shared))
        return await asyncio.shield(shared[1])

    def _read_done(self, key: str, shared: SharedRead, _future: object) -> None:
        if self._reads.get(key) is shared:
            del self._reads[key]
        read = shared[1]
        if not read.cancelled():
            read.exception()  # retrieved: every waiter may have gone (client disconnected)

    async def _read(self, key: str, generation: int) -> Session | None:
        """GETEX (read and refresh the idle timer); the session is cached when still live and
        no invalidation came since `generation` (taken before the read)."""
        try:
            raw = await self.redis.getex(_PREFIX + key, ex=self.idle_timeout)
        except ResponseError as exc:  # WRONGTYPE: a session in an older format; log in again
            if "WRONGTYPE" not in str(exc):
                raise
            await self.redis.delete(_PREFIX + key)
            return None
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
            session = Session(
                key=key,
                user_id=int(data["user_id"]),
                username=str(data["username"]),
                role=str(data["role"]),
                created_at=float(data["created_at"]),
            )
        except (KeyError, TypeError, ValueError):
            await self.redis.delete(_PREFIX + key)
            return None
        if time.time() - session.created_at > self.absolute_timeout:
            await self.delete_key(session.user_id, key)
            return None
        self.cache.put(key, session, generation)
        return session

    async def alive(self, session: Session) -> bool:
        """Whether a session still exists (not logged out, revoked or past its lifetime),
        without refreshing its idle timer (an open stream is not activity)."""
        if time.time() - session.created_at > self.absolute_timeout:
            return False
        return bool(await self.redis.exists(_PREFIX + session.key))

    async def delete(self, token: str, user_id: int) -> None:
        await self.delete_key(user_id, _hash(token))

    async def delete_key(self, user_id: int, key: str) -> None:
        # Dropped locally before (never served again from here, even if Redis fails) and after
        # (a request of this process that read it from Redis meanwhile cached it again).
        self.cache.drop_key(key)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(_PREFIX + key)
                pipe.srem(f"{_USER_INDEX}{user_id}", key)
                pipe.publish(CHANNEL, key_message(key))
                await pipe.execute()
        finally:
            self.cache.drop_key(key)

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, deleted, password changed)."""
        self.cache.drop_user(user_id)  # before and after, as in delete_key
        try:
            index = f"{_USER_INDEX}{user_id}"
            keys = await self.redis.smembers(index)
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.delete(_PREFIX + _text(key))
                pipe.delete(index)
                pipe.publish(CHANNEL, user_message(user_id))
                await pipe.execute()
        finally:
            self.cache.drop_user(user_id)
        return len(keys)

    async def set_role(self, user_id: int, role: str) -> None:
        """Apply a role change to the user's live sessions (effective on the next request)."""
        await self._rewrite(user_id, "role", role)

    async def set_username(self, user_id: int, username: str) -> None:
        await self._rewrite(user_id, "username", username)

    async def _rewrite(self, user_id: int, field: str, value: str) -> None:
        for key in await self.redis.smembers(f"{_USER_INDEX}{user_id}"):
            name = _PREFIX + _text(key)
            raw = await self.redis.get(name)
            if raw is None:
                continue
            data = orjson.loads(raw)
            data[field] = value
            # XX: never resurrect a session deleted meanwhile; KEEPTTL: keep its idle timer.
            await self.redis.set(name, orjson.dumps(data), xx=True, keepttl=True)
        # After the rewrite: a copy read before it is dropped everywhere, one read after it is
        # current (and a read racing with the message is not cached, see SessionCache.put).
        self.cache.drop_user(user_id)
        await self.redis.publish(CHANNEL, user_message(user_id))
