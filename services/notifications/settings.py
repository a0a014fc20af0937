"""Settings of the notifications service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from stockmanager.settings import KernelSettings


class NotificationsSettings(KernelSettings):
    # SSE: a `: heartbeat` comment after this many seconds without sending anything.
    sse_heartbeat_seconds: float = Field(25.0, gt=0)
    # SSE: a stream ends after this long (0 = never) and the browser's EventSource reconnects,
    # which makes the gateway check the session again (bounds how long a revoked session can
    # keep listening).
    sse_max_lifetime_seconds: float = Field(3600.0, ge=0)
    # SSE: open streams this process serves at most; one more is refused with 429 (the gateway
    # also limits streams per user and per gateway process).
    sse_max_streams: int = Field(1000, ge=1)
    # Redis pub/sub channel carrying "these users' notifications changed" between replicas.
    sse_channel: str = "stockmanager:notifications:changed"


@lru_cache(maxsize=1)
def notifications_settings() -> NotificationsSettings:
    return NotificationsSettings()
