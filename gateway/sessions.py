"""Server-side sessions in Redis, shared by every gateway replica.

The cookie holds a random 256-bit token; Redis keys hold only its SHA-256, so a Redis dump
cannot be replayed as cookies. Idle expiry is the key's TTL (refreshed on use); the absolute
lifetime is checked against the creation time. Each user's session hashes are indexed so that
disabling a user or changing a password can end all of them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

_PREFIX = "sm:session:"
_USER_INDEX = "sm:user-sessions:"


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    user_id: int
    username: str
    role: str
    created_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, redis: Redis, *, idle_timeout: int, absolute_timeout: int) -> None:
        self.redis = redis
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout

    async def create(self, user_id: int, username: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        key = _hash(token)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                _PREFIX + key,
                mapping={
                    "user_id": user_id,
                    "username": username,
                    "role": role,
                    "created_at": f"{time.time():.3f}",
                },
            )
            pipe.expire(_PREFIX + key, self.idle_timeout)
            pipe.sadd(f"{_USER_INDEX}{user_id}", key)
            pipe.expire(f"{_USER_INDEX}{user_id}", self.absolute_timeout)
            await pipe.execute()
        return token

    async def get(self, token: str) -> Session | None:
        """The live session for a cookie token, refreshing its idle timer (one round trip)."""
        if not token or len(token) > 200:
            return None
        key = _hash(token)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(_PREFIX + key)
            pipe.expire(_PREFIX + key, self.idle_timeout)
            data, _ = await pipe.execute()
        if not data:
            return None
        try:
            session = Session(
                key=key,
                user_id=int(data[b"user_id"]),
                username=data[b"username"].decode(),
                role=data[b"role"].decode(),
                created_at=float(data[b"created_at"]),
            )
        except (KeyError, ValueError):
            await self.redis.delete(_PREFIX + key)
            return None
        if time.time() - session.created_at > self.absolute_timeout:
            await self.delete_key(session.user_id, key)
            return None
        return session

    async def delete(self, token: str, user_id: int) -> None:
        await self.delete_key(user_id, _hash(token))

    async def delete_key(self, user_id: int, key: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(_PREFIX + key)
            pipe.srem(f"{_USER_INDEX}{user_id}", key)
            await pipe.execute()

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, deleted, password changed)."""
        index = f"{_USER_INDEX}{user_id}"
        keys = await self.redis.smembers(index)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.delete(_PREFIX + key.decode())
            pipe.delete(index)
            await pipe.execute()
        return len(keys)

    async def set_role(self, user_id: int, role: str) -> None:
        """Apply a role change to the user's live sessions (effective on the next request)."""
        keys = await self.redis.smembers(f"{_USER_INDEX}{user_id}")
        for key in keys:
            name = _PREFIX + key.decode()
            # Only touch sessions that still exist; HSET on a gone key would resurrect it.
            if await self.redis.exists(name):
                await self.redis.hset(name, "role", role)

    async def set_username(self, user_id: int, username: str) -> None:
        keys = await self.redis.smembers(f"{_USER_INDEX}{user_id}")
        for key in keys:
            name = _PREFIX + key.decode()
            if await self.redis.exists(name):
                await self.redis.hset(name, "username", username)
