"""Redis stops and starts again: nothing the audit trail should hold is lost.

This needs its own stack: its own Redis (so stopping it does not break the shared session stack)
and its own database (so the shared stack's outbox relays never publish into this Redis, nor this
stack's relays into the shared one — every service relays its whole outbox table).

While Redis is down the gateway cannot validate sessions (they live in Redis), so sales are sent
straight to the sales service with the signed identity header the gateway would have added: the
sales service needs only PostgreSQL and the internal secret, which is exactly the guarantee under
test — the sale commits, its events wait in `sales.outbox`, and the relay publishes them when
Redis is back.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from stockmanager.cli import migrate
from stockmanager.db import Database
from stockmanager.embedded import EmbeddedRedis, free_port
from stockmanager.events import EventType
from tests.audit.support import (
    User,
    an_event,
    create_product,
    direct_sale,
    fake_user,
    publish,
    sales_api_available,
    wait_for_records,
    wait_until,
)
from tests.support.stack import Stack, start_stack, unique


@dataclass
class Site:
    stack: Stack
    redis_server: EmbeddedRedis
    database_url: str


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    name = f"audit_outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(database_url, name)
    base = Path(tmp_path_factory.mktemp("audit-outage"))
    redis_server = EmbeddedRedis(base / "redis", port=free_port())
    try:
        migrate(url)
        redis_url = redis_server.start()
        with start_stack(database_url=url, redis_url=redis_url, log_dir=base) as stack:
            yield Site(stack, redis_server, url)
    finally:
        if redis_server.running:
            redis_server.stop()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def gateway_logs_in(stack: Stack) -> bool:
    """After a Redis restart the gateway may fail a request on a stale pooled connection."""
    with stack.client() as client:
        response = client.post(
            "/api/login", json={"username": "root", "password": stack.root_password}
        )
    return response.status_code == 200


@pytest_asyncio.fixture
async def site_db(site: Site) -> AsyncIterator[Database]:
    database = Database(site.database_url, pool_size=2, max_overflow=0)
    yield database
    await database.dispose()


def test_sales_during_redis_outage_are_all_audited(site: Site) -> None:
    stack = site.stack
    wait_until(lambda: gateway_logs_in(stack), timeout=30, interval=0.2)
    if not sales_api_available(stack):
        pytest.skip("the sales service does not serve POST /api/sales/bulk yet")
    product = create_product(stack, 1000)
    with stack.root() as root:
        root_id = int(root.get("/api/session").json()["user_id"])
    tag = unique("outage-")
    sold: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    root = User(root_id, "root", "root")

    def burst() -> None:
        with httpx.Client(base_url=stack.service_urls["sales"][0], timeout=30) as client:
            index = 0
            while not stop.is_set():
                index += 1
                response = direct_sale(client, stack, root, product, f"{tag}-{index}")
                if response.status_code != 201:
                    failures.append(f"{response.status_code} {response.text}")
                    return
                sold.append(int(response.json()["sale_id"]))

    seller = threading.Thread(target=burst)
    seller.start()
    try:
        wait_until(lambda: len(sold) >= 20 or failures, timeout=30, interval=0.01)
        site.redis_server.stop()
        down_from = len(sold)
        wait_until(lambda: len(sold) >= down_from + 40 or failures, timeout=60, interval=0.01)
        during_outage = list(sold[down_from:])
        with psycopg.connect(site.database_url, autocommit=True) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM sales.outbox WHERE published_at IS NULL"
                " AND type = 'sale.created'"
            ).fetchone()
            audited = conn.execute(
                "SELECT count(*) FROM audit.audit_log WHERE event_type = 'sale.created'"
                " AND entity_id = ANY(%s)",
                (during_outage,),
            ).fetchone()
        site.redis_server.start()
        up_from = len(sold)
        wait_until(lambda: len(sold) >= up_from + 20 or failures, timeout=60, interval=0.01)
    finally:
        stop.set()
        seller.join()
        if not site.redis_server.running:
            site.redis_server.start()
    assert failures == []
    assert waiting is not None and waiting[0] >= len(during_outage) >= 40
    assert audited is not None and audited[0] == 0  # nothing could be delivered meanwhile

    def audited_sales() -> list[tuple[int, str, str]] | None:
        with psycopg.connect(site.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT entity_id, host(ip_address), request_id FROM audit.audit_log"
                " WHERE event_type = 'sale.created' AND entity_id = ANY(%s)",
                (sold,),
            ).fetchall()
        return rows if len(rows) >= len(sold) else None

    rows = wait_until(audited_sales, timeout=60, interval=0.2)
    assert sorted(row[0] for row in rows) == sorted(sold)  # every sale, each exactly once
    assert {row[1] for row in rows} == {"203.0.113.9"}
    assert all(row[2].startswith(tag) for row in rows)


async def test_consumer_resumes_after_redis_restart(site: Site, site_db: Database) -> None:
    actor = fake_user()
    before = [an_event(EventType.LOGIN_SUCCEEDED, actor, "user", actor.id) for _ in range(20)]

    async def publish_to_site(events: list[Any]) -> None:
        client = Redis.from_url(site.redis_server.url)
        try:
            await publish(client, events)
        finally:
            await client.aclose()

    await publish_to_site(before)
    await wait_for_records(site_db, [e.id for e in before])
    site.redis_server.stop()  # SIGTERM: the AOF (stream + consumer group) is flushed
    site.redis_server.start()
    after = [an_event(EventType.LOGOUT, actor, "user", actor.id) for _ in range(50)]
    await publish_to_site(after)
    rows = await wait_for_records(site_db, [e.id for e in after], within=60)
    assert len(rows) == 50
