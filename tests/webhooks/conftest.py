"""A stack of its own for the webhook tests: its receivers listen on 127.0.0.1, which only
`STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS` permits, and its retry schedule is short."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.isolated import isolated_backends
from tests.support.stack import Stack, start_stack

WEBHOOK_ENV = {
    "STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "STOCKMANAGER_WEBHOOKS_TIMEOUT_SECONDS": "1",
    "STOCKMANAGER_WEBHOOKS_RETRY_BASE_SECONDS": "0.2",
    "STOCKMANAGER_WEBHOOKS_RETRY_MAX_DELAY_SECONDS": "1",
    "STOCKMANAGER_WEBHOOKS_LEASE_MARGIN_SECONDS": "1",
    "STOCKMANAGER_WEBHOOKS_POLL_SECONDS": "0.2",
    # Never within a test: receivers that are down or hang must not get their subscription
    # disabled (the auto-disable test has a stack of its own, `disabling_stack`).
    "STOCKMANAGER_WEBHOOKS_DISABLE_AFTER_FAILURES": "1000000",
    "STOCKMANAGER_WEBHOOKS_DISABLE_AFTER_SECONDS": "0",
    "STOCKMANAGER_WEBHOOKS_ROTATION_GRACE_SECONDS": "3600",
}


@contextmanager
def webhooks_stack(
    migrated: str, data_root: Path, name: str, env: dict[str, str], replicas: int = 1
) -> Iterator[Stack]:
    log_dir = data_root / f"{name}-stack"
    log_dir.mkdir(exist_ok=True)
    with (
        isolated_backends(migrated, data_root, name) as (database_url, redis_url),
        start_stack(
            database_url=database_url,
            redis_url=redis_url,
            log_dir=log_dir,
            extra_env=env,
            replicas=replicas,
        ) as running,
    ):
        yield running


@pytest.fixture(scope="package")
def hooks_stack(migrated: str, data_root: Path) -> Iterator[Stack]:
    with webhooks_stack(migrated, data_root, "webhooks", WEBHOOK_ENV) as running:
        yield running


@pytest.fixture(scope="package")
def disabling_stack(migrated: str, data_root: Path) -> Iterator[Stack]:
    """Subscriptions are disabled after 6 failures in a row."""
    env = {**WEBHOOK_ENV, "STOCKMANAGER_WEBHOOKS_DISABLE_AFTER_FAILURES": "6"}
    with webhooks_stack(migrated, data_root, "webhooks_disabling", env) as running:
        yield running


@pytest.fixture(scope="package")
def pruning_stack(migrated: str, data_root: Path) -> Iterator[Stack]:
    """Finished deliveries leave the log one second after they were created."""
    env = {
        **WEBHOOK_ENV,
        "STOCKMANAGER_WEBHOOKS_LOG_RETENTION_DAYS": str(1 / 86400),
        "STOCKMANAGER_WEBHOOKS_LOG_CLEANUP_INTERVAL_SECONDS": "0.3",
    }
    with webhooks_stack(migrated, data_root, "webhooks_pruning", env) as running:
        yield running
