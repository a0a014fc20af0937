"""Settings of the sales service (environment variables, prefix STOCKMANAGER_)."""

from __future__ import annotations

from functools import lru_cache

from stockmanager.settings import KernelSettings


class SalesSettings(KernelSettings):
    # Connections of the checkout pool (the sale POSTs; checkout.py). Sized so that a burst of
    # sales never opens and closes connections per sale (SQLAlchemy's overflow connections
    # did: a new PostgreSQL backend per sale, more CPU than the sale itself). Reads, edits and
    # the relay use the kernel's engine (db_pool_size / db_max_overflow).
    checkout_pool_size: int = 12
    # Seconds a sale waits for a free checkout connection before answering 503.
    checkout_pool_timeout: float = 15.0
    # Sales committed within this window wake the outbox relay once (0: after every sale).
    relay_coalesce_seconds: float = 0.01
    # Idempotency keys are remembered this long (decisions §4: 24 h).
    idempotency_ttl_seconds: int = 24 * 3600
    # How often a replica deletes expired idempotency keys (seconds).
    idempotency_purge_interval: float = 600.0
    # Upper bound on distinct lines in one sale (a sale is one transaction holding row locks).
    max_sale_lines: int = 500


@lru_cache(maxsize=1)
def sales_settings() -> SalesSettings:
    return SalesSettings()
