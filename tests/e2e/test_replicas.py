"""Two replicas of every service behind one gateway: requests reach both (stateless services)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack, start_stack

PROBES = {
    "products": "/api/products",
    "sales": "/api/sales",
    "users": "/api/users",
    "metrics": "/api/stats",
    "notifications": "/api/notifications/unread",
    "audit": "/api/all",
}


@pytest.fixture(scope="module")
def replicated(
    migrated: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    log_dir = Path(tmp_path_factory.mktemp("replicas"))
    with start_stack(
        database_url=migrated, redis_url=redis_url, log_dir=log_dir, replicas=2
    ) as running:
        yield running


def served_requests(url: str, route: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    pattern = re.compile(
        r'^stockmanager_http_requests_total\{method="GET",route="'
        + re.escape(route)
        + r'",status="200"\} ([0-9.e+]+)$',
        re.M,
    )
    return sum(float(value) for value in pattern.findall(text))


def test_requests_are_spread_over_both_replicas(replicated: Stack) -> None:
    with replicated.root() as root:
        for service, path in PROBES.items():
            if service not in replicated.service_urls:
                continue
            for _ in range(6):
                response = root.get(path)
                assert response.status_code == 200, (service, response.text)
            counts = [served_requests(url, path) for url in replicated.service_urls[service]]
            assert len(counts) == 2
            assert all(count >= 1 for count in counts), (service, counts)


def test_sessions_survive_any_replica_and_a_replica_going_down(replicated: Stack) -> None:
    with replicated.root() as root:
        replicated.supervisor.kill("users-1")
        try:
            # The gateway skips the dead replica; every request still succeeds.
            for _ in range(6):
                assert root.get("/api/session").status_code == 200
                assert root.get("/api/users").status_code in (200,)
        finally:
            replicated.supervisor.restart("users-1")
            replicated.supervisor.wait_ready(timeout=60, names=["users-1"])
