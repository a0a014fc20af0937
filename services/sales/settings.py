"""Settings of the sales service (environment variables, prefix STOCKMANAGER_)."""

from __future__ import annotations

from functools import lru_cache

from stockmanager.settings import KernelSettings


class SalesSettings(KernelSettings):
    # Larger than the kernel's default (4 + 4): under a checkout load the overflow connections
    # were opened and closed for every sale (a new PostgreSQL backend each time), which cost
    # more CPU than the sale itself; see bench/results/sales.md. Env STOCKMANAGER_DB_POOL_SIZE.
    db_pool_size: int = 16
    db_max_overflow: int = 4
    # Idempotency keys are remembered this long (decisions §4: 24 h).
    idempotency_ttl_seconds: int = 24 * 3600
    # How often a replica deletes expired idempotency keys (seconds).
    idempotency_purge_interval: float = 600.0
    # Upper bound on distinct lines in one sale (a sale is one transaction holding row locks).
    max_sale_lines: int = 500


@lru_cache(maxsize=1)
def sales_settings() -> SalesSettings:
    return SalesSettings()
