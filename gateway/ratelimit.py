"""Login brute-force protection with counters in Redis (shared by every gateway replica).

Failures are counted per (username, client IP) and per client IP in fixed windows. Once a
counter reaches its limit, further attempts are refused with 429 and `Retry-After` until the
window ends; the password is not even checked, so guessing gains nothing.

Every attempt first *reserves* a failure slot on both counters in one Lua script (check and
increment are one atomic step in Redis), and only then is the password checked. N concurrent
wrong passwords, sent to any number of gateway replicas, therefore get at most `max_failures`
answers from the password check and 429 for the rest. An attempt that turns out not to be a
wrong password (success, a disabled account, an upstream error) gives its slot back.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.asyncio import Redis

from stockmanager.errors import RateLimited

# KEYS: counters; ARGV: window, then each counter's limit.
# Returns 0 when a slot was reserved on every counter (each incremented, the window started on
# its first failure), else the seconds until the first full counter's window ends.
_RESERVE = """
for i, key in ipairs(KEYS) do
    local count = tonumber(redis.call('GET', key) or '0')
    if count >= tonumber(ARGV[i + 1]) then
        local ttl = redis.call('TTL', key)
        if ttl <= 0 then ttl = tonumber(ARGV[1]) end
        return ttl
    end
end
for _, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 then
        redis.call('EXPIRE', key, ARGV[1])
    end
end
return 0
"""

# KEYS[1]: the per-user counter (deleted: the account's password was right);
# KEYS[2]: the per-IP counter (the reserved slot is given back, never below zero).
# ARGV[1]: 1 to delete the per-user counter, 0 to give its slot back like the IP's.
_RELEASE = """
if ARGV[1] == '1' then
    redis.call('DEL', KEYS[1])
else
    local count = tonumber(redis.call('GET', KEYS[1]) or '0')
    if count > 0 then redis.call('DECR', KEYS[1]) end
end
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


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
        self._reserve: Any = redis.register_script(_RESERVE)
        self._release: Any = redis.register_script(_RELEASE)

    def _keys(self, username: str, ip: str) -> list[str]:
        return [_key("user", username.strip().lower(), ip), _key("ip", ip)]

    async def reserve(self, username: str, ip: str) -> None:
        """Take one failure slot for this attempt, or raise RateLimited (429 + Retry-After)."""
        retry_after = int(
            await self._reserve(
                keys=self._keys(username, ip),
                args=[self.window, self.max_failures, self.ip_max_failures],
            )
        )
        if retry_after:
            raise RateLimited(headers={"Retry-After": str(max(1, retry_after))})

    async def succeeded(self, username: str, ip: str) -> None:
        """The password was right: the per-user count starts over, the IP's slot is returned."""
        await self._release(keys=self._keys(username, ip), args=[1])

    async def release(self, username: str, ip: str) -> None:
        """The attempt was no wrong password (e.g. the users service failed): slots returned."""
        await self._release(keys=self._keys(username, ip), args=[0])
