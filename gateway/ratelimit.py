"""Login brute-force protection with counters in Redis (shared by every gateway replica).

Failures are counted per (username, client IP) and per client IP in fixed windows. Once a
counter reaches its limit, further attempts are refused with 429 and `Retry-After` until the
window ends; the password is not even checked, so guessing gains nothing.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from stockmanager.errors import RateLimited


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"sm:login-fail:{kind}:{digest}"


class LoginRateLimiter:
    def __init__(
        self, redis: Redis, *, max_failures: int, ip_max_failures: int, window: int
    ) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.ip_max_failures = ip_max_failures
        self.window = window

    def _keys(self, username: str, ip: str) -> tuple[str, str]:
        return _key("user", username.strip().lower(), ip), _key("ip", ip)

    async def check(self, username: str, ip: str) -> None:
        user_key, ip_key = self._keys(username, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(user_key)
            pipe.ttl(user_key)
            pipe.get(ip_key)
            pipe.ttl(ip_key)
            user_count, user_ttl, ip_count, ip_ttl = await pipe.execute()
        for count, ttl, limit in (
            (user_count, user_ttl, self.max_failures),
            (ip_count, ip_ttl, self.ip_max_failures),
        ):
            if count is not None and int(count) >= limit:
                retry_after = max(1, int(ttl) if ttl and ttl > 0 else self.window)
                raise RateLimited(headers={"Retry-After": str(retry_after)})

    async def record_failure(self, username: str, ip: str) -> None:
        user_key, ip_key = self._keys(username, ip)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (user_key, ip_key):
                # SET NX EX starts the window on the first failure (works on Redis 6.2).
                pipe.set(key, 0, ex=self.window, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def reset(self, username: str, ip: str) -> None:
        user_key, _ = self._keys(username, ip)
        await self.redis.delete(user_key)
