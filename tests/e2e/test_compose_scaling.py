"""Compose scaling without Docker: `docker compose --scale sales=3` adds addresses to the name
`sales` in Docker's DNS. The gateway's proxy re-resolves each service host name periodically and
spreads requests over every address, so a replica added after the gateway started gets requests
within one refresh, one that went away stops getting them, and deep health lists each replica.

The "replicas" are HTTP servers on the same port of different loopback addresses (127.0.0.0/8
all reach this machine); the service name resolves through a resolver the test controls, as
Docker's DNS would answer after each scale."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest_asyncio
from aiohttp import web
from redis.asyncio import Redis

from gateway.health import deep_health
from gateway.proxy import ServiceProxy, system_resolver

NAME = "sales.compose.test"
ADDRESSES = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def shared_free_port() -> int:
    """A port free on every address in ADDRESSES."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((ADDRESSES[0], 0))
            port = int(probe.getsockname()[1])
        sockets = []
        try:
            for address in ADDRESSES:
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no port free on every loopback address")


class Replicas:
    """One tiny service per loopback address; each answers with its own address."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.runners: dict[str, web.AppRunner] = {}
        self.hosts: list[str] = []

    async def start(self, address: str) -> None:
        async def who(request: web.Request) -> web.Response:
            self.hosts.append(request.headers.get("Host", ""))
            return web.json_response({"replica": address})

        async def ready(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_get("/api/sales", who)
        app.router.add_get("/readyz", ready)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, address, self.port).start()
        self.runners[address] = runner

    async def stop(self, address: str) -> None:
        await self.runners.pop(address).cleanup()

    async def close(self) -> None:
        for address in list(self.runners):
            await self.stop(address)


class Dns:
    """What Docker's DNS answers for the service name right now."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.queries = 0

    async def resolve(self, host: str, port: int) -> list[str]:
        self.queries += 1
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest_asyncio.fixture
async def scaled() -> AsyncIterator[tuple[ServiceProxy, Replicas, Dns]]:
    replicas = Replicas(shared_free_port())
    dns = Dns()
    await replicas.start("127.0.0.1")
    dns.answers[NAME] = ["127.0.0.1"]
    proxy = ServiceProxy(
        {"sales": [f"http://{NAME}:{replicas.port}"]},
        timeout=10,
        connect_timeout=2,
        down_seconds=5,
        pool_limit=20,
        dns_refresh=0.05,
        resolver=dns.resolve,
    )
    await proxy.open()
    try:
        yield proxy, replicas, dns
    finally:
        await proxy.close()
        await replicas.close()


async def served_by(proxy: ServiceProxy, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(count):
        answer = await proxy.forward("sales", "GET", "/api/sales", {}, b"")
        assert answer.status == 200
        assert answer.body is not None
        seen[answer.body.decode().split('"replica": "')[1].split('"')[0]] += 1
    return seen


async def after_next_refresh(proxy: ServiceProxy) -> None:
    """Two completed re-resolutions: the second one started after the caller's change."""
    await proxy.wait_refreshed()
    await proxy.wait_refreshed()


async def test_a_replica_added_after_start_gets_requests(
    scaled: tuple[ServiceProxy, Replicas, Dns],
) -> None:
    proxy, replicas, dns = scaled
    assert await served_by(proxy, 4) == Counter({"127.0.0.1": 4})

    # docker compose --scale sales=3: two containers more, two addresses more for the name.
    await replicas.start("127.0.0.2")
    await replicas.start("127.0.0.3")
    dns.answers[NAME] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    await after_next_refresh(proxy)
    assert await served_by(proxy, 9) == Counter({a: 3 for a in ADDRESSES})  # round-robin
    # The services see the name they are called by, not the address.
    assert set(replicas.hosts) == {f"{NAME}:{replicas.port}"}

    # Scaled back to one: the removed replica stops getting requests.
    dns.answers[NAME] = ["127.0.0.2"]
    await replicas.stop("127.0.0.1")
    await replicas.stop("127.0.0.3")
    await after_next_refresh(proxy)
    assert await served_by(proxy, 4) == Counter({"127.0.0.2": 4})


async def test_a_failed_lookup_keeps_the_known_replicas(
    scaled: tuple[ServiceProxy, Replicas, Dns],
) -> None:
    proxy, replicas, dns = scaled
    await replicas.start("127.0.0.2")
    dns.answers[NAME] = ["127.0.0.1", "127.0.0.2"]
    await after_next_refresh(proxy)
    del dns.answers[NAME]  # DNS hiccup: the name does not resolve for a while
    queries = dns.queries
    await after_next_refresh(proxy)
    assert dns.queries > queries
    assert await served_by(proxy, 4) == Counter({"127.0.0.1": 2, "127.0.0.2": 2})


async def test_deep_health_lists_each_resolved_replica(
    scaled: tuple[ServiceProxy, Replicas, Dns], redis: Redis
) -> None:
    proxy, replicas, dns = scaled
    await replicas.start("127.0.0.2")
    dns.answers[NAME] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # .3 announced, not serving
    await after_next_refresh(proxy)
    runtime: Any = SimpleNamespace(
        proxy=proxy, redis=redis, settings=SimpleNamespace(event_stream="compose-scaling-test")
    )
    report = await deep_health(runtime)
    port = replicas.port
    states = report["services"]["sales"]["replicas"]
    assert set(states) == {f"http://{a}:{port}" for a in ADDRESSES}
    assert states[f"http://127.0.0.1:{port}"] == "ok"
    assert states[f"http://127.0.0.2:{port}"] == "ok"
    assert states[f"http://127.0.0.3:{port}"].startswith("down: ")
    assert report["services"]["sales"]["status"] == "ok"


async def test_a_name_that_never_resolved_stays_in_the_url() -> None:
    """Compose starts the gateway before `sales` may exist in DNS: the URL keeps the name (and
    aiohttp resolves it per connection) until a refresh finds addresses."""
    dns = Dns()
    proxy = ServiceProxy(
        {"sales": ["http://sales.not-yet.test:5102", "http://127.0.0.9:5102"]},
        timeout=10,
        connect_timeout=2,
        down_seconds=5,
        pool_limit=20,
        dns_refresh=0.05,
        resolver=dns.resolve,
    )
    await proxy.open()
    try:
        urls = [replica.url for replica in proxy.upstreams["sales"].replicas]
        assert urls == ["http://sales.not-yet.test:5102", "http://127.0.0.9:5102"]
        dns.answers["sales.not-yet.test"] = ["127.0.0.7", "127.0.0.8"]
        await after_next_refresh(proxy)
        urls = [replica.url for replica in proxy.upstreams["sales"].replicas]
        assert urls == [
            "http://127.0.0.7:5102",
            "http://127.0.0.8:5102",
            "http://127.0.0.9:5102",
        ]
    finally:
        await proxy.close()


async def test_system_resolver_resolves_localhost_to_one_replica() -> None:
    assert await system_resolver("localhost", 80) == ["127.0.0.1"]


async def test_refresh_disabled_keeps_configured_urls() -> None:
    """STOCKMANAGER_UPSTREAM_DNS_REFRESH_SECONDS=0: names stay in the URLs, never re-resolved."""
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.5"]

    proxy = ServiceProxy(
        {"sales": ["http://sales:5102"]},
        timeout=10,
        connect_timeout=2,
        down_seconds=5,
        pool_limit=20,
        dns_refresh=0,
        resolver=resolver,
    )
    await proxy.open()
    try:
        assert [r.url for r in proxy.upstreams["sales"].replicas] == ["http://sales:5102"]
        assert calls == []
    finally:
        await proxy.close()
