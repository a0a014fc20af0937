"""Per-address limits on the public POSTs (registration and the password-reset steps).

A route opts in with `limit=PublicLimit.…` in ROUTE_MAP; the policy's numbers are gateway
settings. Every request to such a route counts against its client address in a fixed window
kept in Redis, so all gateway replicas share the budget; past the limit the answer is 429
`RateLimited` with `Retry-After` (the seconds left in the window) and nothing reaches the
service. Counting and starting the window are one Lua script, so parallel requests can never
slip past the limit. IPv6 clients are counted per /64: one host usually owns a whole /64.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from gateway.settings import GatewaySettings
from stockmanager.errors import RateLimited


class PublicLimit(StrEnum):
    REGISTER = "register"  # POST /api/register
    RESET_REQUEST = "reset_request"  # POST /api/users/reset-password (mails a code)
    RESET_CODE = "reset_code"  # validate-code and change-password (each one a code guess)


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    max_requests: int
    window_seconds: int


def policy_for(limit: PublicLimit, settings: GatewaySettings) -> LimitPolicy:
    if limit is PublicLimit.REGISTER:
        return LimitPolicy(settings.register_limit, settings.register_limit_window)
    if limit is PublicLimit.RESET_REQUEST:
        return LimitPolicy(settings.reset_request_limit, settings.reset_request_limit_window)
    return LimitPolicy(settings.reset_code_limit, settings.reset_code_limit_window)


# INCR, and start the window on the first hit (or if a key somehow lost its expiry), atomically.
# Returns the count including this request and the seconds left in the window.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


def address_bucket(ip: str) -> str:
    """The address a limit counts against: the IP itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def counter_key(limit: PublicLimit, ip: str) -> str:
    return f"sm:public-limit:{limit.value}:{address_bucket(ip)}"


async def enforce(
    redis: Redis, settings: GatewaySettings, limit: PublicLimit | None, ip: str
) -> None:
    """Count this request against its address; RateLimited once over the policy's limit."""
    if limit is None:
        return
    policy = policy_for(limit, settings)
    count, ttl = await redis.eval(_COUNT, 1, counter_key(limit, ip), str(policy.window_seconds))
    if int(count) > policy.max_requests:
        raise RateLimited(headers={"Retry-After": str(max(1, int(ttl)))})
