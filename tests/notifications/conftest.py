"""Fixtures of the notifications tests.

`second_site` adds, next to the session stack, a second notifications replica (short heartbeat
and stream lifetime, so those behaviours are testable in seconds) and a second gateway that
routes notifications to that replica and everything else to the stack's services. Together with
the stack that is two gateways and two notifications replicas sharing PostgreSQL and Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from stockmanager.embedded import free_port
from stockmanager.supervisor import ProcessSpec, Supervisor
from tests.notifications.support import Actor, login_cookie, new_actor, sse_session
from tests.support.stack import Stack, gateway_spec, service_spec

SECOND_HEARTBEAT = 0.5
SECOND_LIFETIME = 4.0


@dataclass
class SecondSite:
    gateway_url: str
    notifications_url: str
    supervisor: Supervisor


def second_gateway_spec(stack: Stack, notifications_urls: list[str], port: int) -> ProcessSpec:
    """A gateway process sharing the stack's Redis, secret and services (except notifications)."""
    env = dict(stack.env)
    env["STOCKMANAGER_NOTIFICATIONS_URLS"] = ",".join(notifications_urls)
    # Its tests open up to 40 streams per user (resource release, not admission limits).
    env["STOCKMANAGER_SSE_MAX_STREAMS_PER_USER"] = "100"
    return gateway_spec("gateway-2", port, env)


@pytest.fixture(scope="session")
def second_site(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondSite]:
    service_port, gateway_port = free_port(), free_port()
    service_env = dict(stack.env)
    service_env["STOCKMANAGER_SSE_HEARTBEAT_SECONDS"] = str(SECOND_HEARTBEAT)
    service_env["STOCKMANAGER_SSE_MAX_LIFETIME_SECONDS"] = str(SECOND_LIFETIME)
    notifications_url = f"http://127.0.0.1:{service_port}"
    specs = [
        service_spec("notifications", service_port, service_env, "notifications-2"),
        second_gateway_spec(stack, [notifications_url], gateway_port),
    ]
    log = Path(tmp_path_factory.mktemp("notifications-second-site")) / "processes.log"
    with log.open("w") as out:
        supervisor = Supervisor(specs, out=out)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=60)
            yield SecondSite(f"http://127.0.0.1:{gateway_port}", notifications_url, supervisor)
        finally:
            supervisor.stop()


@pytest_asyncio.fixture
async def seller(stack: Stack) -> Actor:
    return await new_actor(stack)


@pytest_asyncio.fixture(scope="session")
async def admin(stack: Stack) -> Actor:
    """One admin shared by the tests (it mostly acts; assertions about what it receives filter
    by unique product names or titles)."""
    return await new_actor(stack, "admin")


@pytest_asyncio.fixture(scope="session")
async def root_cookie(stack: Stack) -> str:
    return await login_cookie(stack.base_url, "root", stack.root_password)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with sse_session() as session:
        yield session
