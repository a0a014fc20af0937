"""Process configuration from environment variables (12-factor).

Every setting has a working local default so that a process started with nothing configured
behaves sensibly on a developer laptop. `stockmanager up` fills in `DATABASE_URL`, `REDIS_URL`
and the internal secret for the processes it starts.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Only used when nothing is configured and no runtime supplied one; `stockmanager up`
# always generates and persists a random secret instead.
DEV_INTERNAL_SECRET = "stockmanager-development-secret-change-me"
# Shortest accepted internal secret, in bytes (UTF-8): `openssl rand -hex 32` gives 64.
MIN_INTERNAL_SECRET_BYTES = 32
INTERNAL_SECRET_VARIABLE = "STOCKMANAGER_INTERNAL_SECRET"
# PostgreSQL connections of one service process's SQLAlchemy engine: kept open, and opened (and
# closed) on top of them under bursts. The only definition of these defaults (Database, the
# settings, README and docs/operations.md quote them; tests/deploy/test_connection_budget.py
# checks). No overflow by default: an overflow connection is closed as soon as it is given back
# while the pool is full, so any load above the pool size opened and closed one per request
# (~4 ms of PostgreSQL CPU each; 8 + 2 opened 176 connections in one products benchmark at
# 16 clients, 10 + 0 opened 9: bench/results/products.md). The same ten connections at most,
# kept open; a request beyond them waits for one. Budget: docs/operations.md, Scaling,
# "Database connections".
DEFAULT_DB_POOL_SIZE = 10
DEFAULT_DB_MAX_OVERFLOW = 0


class KernelSettings(BaseSettings):
    """Settings every process shares."""

    model_config = SettingsConfigDict(env_prefix="STOCKMANAGER_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "STOCKMANAGER_DATABASE_URL"),
    )
    redis_url: str = Field(
        DEFAULT_REDIS_URL, validation_alias=AliasChoices("REDIS_URL", "STOCKMANAGER_REDIS_URL")
    )
    internal_secret: str = DEV_INTERNAL_SECRET
    # Business time zone: rendering of local times, "today", date filters, per-day metrics.
    timezone: str = "America/Argentina/Buenos_Aires"
    log_level: str = "INFO"
    # Connections per process (see DEFAULT_DB_POOL_SIZE).
    db_pool_size: int = Field(DEFAULT_DB_POOL_SIZE, ge=1)
    db_max_overflow: int = Field(DEFAULT_DB_MAX_OVERFLOW, ge=0)
    # Maximum age of a gateway identity header, in seconds.
    identity_max_age: float = 60.0
    # Event stream (Redis Streams) shared by every producer and consumer group.
    event_stream: str = "stockmanager:events"
    # Approximate cap (XADD MAXLEN ~). Events that unauthenticated requests cause come from the
    # gateway and are at most 2 KiB each (gateway `event_max_bytes`), so they can occupy at most
    # ~400 MiB of Redis at this length (docs/operations.md "Security").
    event_stream_maxlen: int = 200_000
    # Messages pending longer than this (ms) are reclaimed from a dead consumer.
    event_reclaim_idle_ms: int = 30_000
    # Where the relay looks for unpublished outbox rows when nothing pokes it (seconds).
    outbox_poll_interval: float = 0.5
    # Central log stream read by /api/debug/logs.
    log_stream: str = "stockmanager:logs"
    log_stream_maxlen: int = 1000
    # `maxmemory` of the embedded Redis (`stockmanager up`; Redis size syntax, e.g. 512mb),
    # with `maxmemory-policy noeviction`: when full, writes fail (the gateway answers 503)
    # instead of sessions or rate-limit counters being evicted silently.
    redis_maxmemory: str = "1gb"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def internal_secret_problem(configured: str | None) -> str | None:
    """Why `configured` (the raw STOCKMANAGER_INTERNAL_SECRET, None when unset) must not be used
    to sign or verify identities; None when it is acceptable.

    Anyone who knows the secret can forge any identity (root included) at a service port, so a
    serving process refuses a missing one, the public development default and a short one.
    """
    if configured is None or not configured.strip():
        return f"{INTERNAL_SECRET_VARIABLE} is not set"
    if configured == DEV_INTERNAL_SECRET:
        return f"{INTERNAL_SECRET_VARIABLE} is the public development default"
    size = len(configured.encode())
    if size < MIN_INTERNAL_SECRET_BYTES:
        return (
            f"{INTERNAL_SECRET_VARIABLE} is too short ({size} bytes; "
            f"at least {MIN_INTERNAL_SECRET_BYTES} are required)"
        )
    return None


@lru_cache(maxsize=1)
def kernel_settings() -> KernelSettings:
    return KernelSettings()


def sqlalchemy_url(url: str, *, driver: str = "psycopg") -> str:
    """Turn a plain `postgresql://` URL into the SQLAlchemy form with the psycopg 3 driver."""
    for prefix in (
        "postgresql+psycopg://",
        "postgresql+asyncpg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return f"postgresql+{driver}://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")
