"""Settings of the metrics service (environment variables, prefix STOCKMANAGER_)."""

from __future__ import annotations

from functools import lru_cache

from stockmanager.settings import KernelSettings


class MetricsSettings(KernelSettings):
    # Seconds between two passes of the rollup refresher (seal closed days, redo changed days).
    # 0 disables the background refresher (every figure is then computed from the live views).
    metrics_refresh_interval: float = 30.0
    # A business day is sealed only this many seconds after it ended, so that a sale whose
    # transaction started before midnight has long committed when its day is aggregated.
    metrics_seal_grace: float = 300.0
    # Days aggregated per refresher transaction (bounds the length of each transaction).
    metrics_seal_chunk_days: int = 62
    # Seconds a refresh waits for transactions older than its snapshot before it advances
    # the sale-id watermark (they might still insert a sale with a smaller id).
    metrics_settle_timeout: float = 5.0
    # More changed closed days than this in one pass (a bulk back-dated import) re-opens the
    # rollups from the earliest changed day instead of redoing the days one by one.
    metrics_reopen_threshold: int = 62


@lru_cache(maxsize=1)
def metrics_settings() -> MetricsSettings:
    return MetricsSettings()
