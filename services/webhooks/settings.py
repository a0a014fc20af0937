"""Settings of the webhooks service (environment variables `STOCKMANAGER_WEBHOOKS_*`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field

from stockmanager.settings import DEFAULT_DB_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE, KernelSettings


class WebhooksSettings(KernelSettings):
    # Its own pool sizes when set (few short transactions: claim, record a batch, fan out an
    # event batch), so a deployment can size this service apart from the others (the
    # production overlay's connection budget, docs/operations.md); else the shared ones.
    db_pool_size: int = Field(
        DEFAULT_DB_POOL_SIZE,
        ge=1,
        validation_alias=AliasChoices(
            "STOCKMANAGER_WEBHOOKS_DB_POOL_SIZE", "STOCKMANAGER_DB_POOL_SIZE"
        ),
    )
    db_max_overflow: int = Field(
        DEFAULT_DB_MAX_OVERFLOW,
        ge=0,
        validation_alias=AliasChoices(
            "STOCKMANAGER_WEBHOOKS_DB_MAX_OVERFLOW", "STOCKMANAGER_DB_MAX_OVERFLOW"
        ),
    )
    # Targets that resolve to loopback, private, link-local, multicast, reserved or metadata
    # addresses are refused unless this is set (local receivers in tests and on a laptop).
    webhooks_allow_private_targets: bool = False
    # Key that encrypts the signing secrets at rest (Fernet, urlsafe base64 of 32 bytes). Empty:
    # derived from STOCKMANAGER_INTERNAL_SECRET (changing that secret then makes the stored
    # signing secrets unreadable: rotate every subscription's secret afterwards).
    webhooks_secret_key: str = ""
    # One delivery attempt: connect + send + read the (bounded) answer, in seconds.
    webhooks_timeout_seconds: float = Field(10.0, gt=0)
    # Bytes of the receiver's answer that are read (and the first 500 kept for the log).
    webhooks_max_response_bytes: int = Field(64 * 1024, ge=0)
    # Retry schedule: attempt n waits base * 2^(n-1) seconds, capped, with jitter (half to the
    # full delay); a delivery still failing `retry_window` after its event is given up.
    webhooks_retry_base_seconds: float = Field(10.0, gt=0)
    webhooks_retry_max_delay_seconds: float = Field(6 * 3600.0, gt=0)
    webhooks_retry_window_seconds: float = Field(24 * 3600.0, gt=0)
    # A subscription is disabled (and the admins notified) once this many deliveries in a row
    # failed AND its first failure in that row is at least `disable_after_seconds` old.
    webhooks_disable_after_failures: int = Field(20, ge=1)
    webhooks_disable_after_seconds: float = Field(12 * 3600.0, ge=0)
    # Concurrent requests of one process: in total, and to one subscription (so one slow or
    # hanging receiver holds at most this many slots and never delays the others).
    webhooks_max_in_flight: int = Field(64, ge=1)
    webhooks_max_in_flight_per_subscription: int = Field(8, ge=1)
    # Deliveries a process claims ahead of its free slots, per subscription and in all: a slot
    # that frees takes the next one at once instead of waiting for a database round (the
    # round trip, not the request, capped throughput at ~8 / round per subscription). The
    # consumer hands new deliveries to its own worker up to the same bounds (the rest wait
    # for a claim, one more row version each): at 24 / 192 a quarter to a third of them
    # overflowed under load (bench/results/webhooks.md), at 56 / 320 2 %.
    webhooks_claim_ahead_per_subscription: int = Field(56, ge=0)
    webhooks_claim_ahead: int = Field(320, ge=0)
    # A claimed delivery is leased for timeout + this long; a process killed mid-attempt loses
    # it only until the lease expires, then another process (or this one restarted) retries.
    webhooks_lease_margin_seconds: float = Field(20.0, gt=0)
    # How often a delivery worker looks for due deliveries when nothing woke it (seconds).
    webhooks_poll_seconds: float = Field(0.5, gt=0)
    # After an attempt finishes, wait this long for others so one transaction records them all.
    webhooks_batch_linger_seconds: float = Field(0.01, ge=0)
    # Finished deliveries (succeeded, or given up) leave the log this many days after they were
    # created (0 keeps them forever); a worker looks for them every `cleanup_interval`.
    webhooks_log_retention_days: float = Field(30.0, ge=0)
    webhooks_log_cleanup_interval_seconds: float = Field(600.0, gt=0)
    # Grace period of the previous secret after a rotation, unless the request gives one.
    webhooks_rotation_grace_seconds: int = Field(24 * 3600, ge=0)

    @property
    def webhooks_lease_seconds(self) -> float:
        """How long a delivery is leased to the process that claimed it (or was handed it)."""
        return self.webhooks_timeout_seconds + self.webhooks_lease_margin_seconds


@lru_cache(maxsize=1)
def webhooks_settings() -> WebhooksSettings:
    return WebhooksSettings()
