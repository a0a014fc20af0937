"""Fixtures of the metrics tests.

`shop`: an isolated database (nothing else writes to it, so catalogue-wide figures are exact)
with a hand-built data set and its own metrics process. `accounts`: users of the shared stack,
created through the users API, for the tests that go through the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.metrics.dataset import Shop, build_shop
from tests.metrics.support import IsolatedMetrics, isolated_metrics


@pytest.fixture(scope="module")
def isolated(database_url: str, redis_url: str, data_root: Path) -> Iterator[IsolatedMetrics]:
    with isolated_metrics(database_url, redis_url, data_root) as running:
        yield running


@pytest.fixture(scope="module")
def shop(isolated: IsolatedMetrics) -> Shop:
    return build_shop(isolated.database_url)
