"""A stack of its own for the webhook tests: its receivers listen on 127.0.0.1, which only
`STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS` permits, and its retry schedule is short."""

from __future__ import annotations

from collections.abc import Iterator
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
    "STOCKMANAGER_WEBHOOKS_DISABLE_AFTER_FAILURES": "15",
    "STOCKMANAGER_WEBHOOKS_DISABLE_AFTER_SECONDS": "0",
    "STOCKMANAGER_WEBHOOKS_ROTATION_GRACE_SECONDS": "3600",
}


@pytest.fixture(scope="package")
def hooks_stack(migrated: str, data_root: Path) -> Iterator[Stack]:
    log_dir = data_root / "webhooks-stack"
    log_dir.mkdir(exist_ok=True)
    with (
        isolated_backends(migrated, data_root, "webhooks") as (database_url, redis_url),
        start_stack(
            database_url=database_url,
            redis_url=redis_url,
            log_dir=log_dir,
            extra_env=WEBHOOK_ENV,
        ) as running,
    ):
        yield running
