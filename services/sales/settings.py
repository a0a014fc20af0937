"""Settings of the sales service (environment variables, prefix STOCKMANAGER_)."""

from __future__ import annotations

from functools import lru_cache

from stockmanager.settings import KernelSettings


class SalesSettings(KernelSettings):
    # Idempotency keys are remembered this long (decisions §4: 24 h).
    idempotency_ttl_seconds: int = 24 * 3600
    # How often a replica deletes expired idempotency keys (seconds).
    idempotency_purge_interval: float = 600.0
    # Upper bound on distinct lines in one sale (a sale is one transaction holding row locks).
    max_sale_lines: int = 500


@lru_cache(maxsize=1)
def sales_settings() -> SalesSettings:
    return SalesSettings()
