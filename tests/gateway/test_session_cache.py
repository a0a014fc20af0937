"""The gateway's in-process session cache (gateway/session_cache.py) never outlives a revocation.

Stores here stand for gateway replicas: each has its own Redis client and cache, subscribed to
the invalidation channel of the suite's real Redis. The last test runs two real gateway
processes under load and ends a session on one of them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.session_cache import CHANNEL, SessionCache
from gateway.sessions import SessionStore
from tests.support.stack import Stack, extra_gateway, unique
from tests.support.waiting import eventually

TTL = 1.0


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the event loop until `predicate()` holds (the cache's listener runs here)."""
    async with asyncio.timeout(10):
        # Polls plain state that the cache's listener task changes; it sets no event to await.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


Replica = Callable[[], Awaitable[SessionStore]]


@pytest.fixture
async def replica(redis_url: str) -> AsyncIterator[Replica]:
    """Makes SessionStores with a cache each, subscribed before they are returned."""
    opened: list[tuple[SessionStore, Redis]] = []

    async def make() -> SessionStore:
        client = Redis.from_url(redis_url, socket_timeout=10)
        store = SessionStore(
            client, idle_timeout=600, absolute_timeout=3600, cache=SessionCache(TTL)
        )
        store.cache.start(client)
        opened.append((store, client))
        await until(lambda: store.cache.listening)
        return store

    yield make
    for store, client in opened:
        await store.cache.stop()
        await client.aclose()


async def getex_calls(redis: Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_getex", {}).get("calls", 0))


async def test_a_session_is_read_from_redis_once_per_ttl(replica: Replica, redis: Redis) -> None:
    store = await replica()
    token = await store.create(7001, "cached", "vendedor")
    before = await getex_calls(redis)
    for _ in range(20):
        session = await store.get(token)
        assert session is not None and session.username == "cached"
    assert await getex_calls(redis) - before == 1


async def test_logout_ends_the_session_in_every_replicas_cache(replica: Replica) -> None:
    first, second = await replica(), await replica()
    token = await first.create(7002, "two-replicas", "vendedor")
    session = await first.get(token)
    assert session is not None and await second.get(token) is not None
    generation = second.cache.generation
    await first.delete_key(session.user_id, session.key)
    # Same process: gone before delete_key returned, without waiting for any message.
    assert await first.get(token) is None
    await until(lambda: second.cache.generation != generation)
    assert await second.get(token) is None


async def test_revoking_and_renaming_reach_every_replica(replica: Replica) -> None:
    first, second = await replica(), await replica()
    token = await first.create(7003, "before", "vendedor")
    assert await first.get(token) is not None and await second.get(token) is not None

    generation = second.cache.generation
    await first.set_role(7003, "admin")
    await until(lambda: second.cache.generation != generation)
    promoted = await second.get(token)
    assert promoted is not None and promoted.role == "admin"

    generation = second.cache.generation
    assert await first.revoke_user(7003) == 1
    await until(lambda: second.cache.generation != generation)
    assert await second.get(token) is None
    assert await first.get(token) is None


async def test_a_read_racing_with_a_revocation_is_not_cached(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: this replica's GETEX reads the session, the revocation (on another replica)
    is executed and its message delivered, and only then does the GETEX reply reach the request.
    That request may still pass (it read a live session), but no later one may."""
    reader, revoker = await replica(), await replica()
    token = await revoker.create(7004, "racing", "vendedor")
    read_done, deliver = asyncio.Event(), asyncio.Event()
    real_getex = reader.redis.getex

    async def delayed_reply(*args: Any, **kwargs: Any) -> Any:
        value = await real_getex(*args, **kwargs)  # Redis has answered: the session was live
        read_done.set()
        await deliver.wait()
        return value

    monkeypatch.setattr(reader.redis, "getex", delayed_reply)
    in_flight = asyncio.create_task(reader.get(token))
    await read_done.wait()
    generation = reader.cache.generation
    assert await revoker.revoke_user(7004) == 1
    await until(lambda: reader.cache.generation != generation)
    deliver.set()
    assert (await in_flight) is not None
    monkeypatch.undo()
    assert await reader.get(token) is None


async def test_concurrent_requests_share_one_read(
    replica: Replica, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 requests of one session arriving while its copy is not cached: one GETEX; and a
    request arriving after a logout does not get the answer of a read started before it."""
    store = await replica()
    token = await store.create(7006, "shared", "vendedor")
    read_done, deliver = asyncio.Event(), asyncio.Event()
    real_getex = store.redis.getex

    async def delayed_reply(*args: Any, **kwargs: Any) -> Any:
        value = await real_getex(*args, **kwargs)
        read_done.set()
        await deliver.wait()
        return value

    monkeypatch.setattr(store.redis, "getex", delayed_reply)
    before = await getex_calls(redis)
    waiting = [asyncio.create_task(store.get(token)) for _ in range(16)]
    await read_done.wait()
    deliver.set()
    results = await asyncio.gather(*waiting)
    assert all(result is not None for result in results)
    assert await getex_calls(redis) - before == 1

    # Not cached any more (logout elsewhere dropped it), a read in flight, then a logout here.
    store.cache.clear()
    read_done.clear()
    deliver.clear()
    first = asyncio.create_task(store.get(token))
    await read_done.wait()
    assert results[0] is not None
    await store.delete_key(7006, results[0].key)
    deliver.set()  # the later read must not wait on (nor share) the first one
    assert await store.get(token) is None
    assert await first is not None  # it read a live session before the logout
    monkeypatch.undo()
    assert await store.get(token) is None


async def test_without_the_subscription_nothing_is_served_from_the_cache(
    replica: Replica, redis: Redis
) -> None:
    """Invalidations missed while the subscription was down must not leave stale entries: the
    cache is emptied when it drops and used again only once re-subscribed."""
    store = await replica()
    token = await store.create(7005, "unsubscribed", "vendedor")
    session = await store.get(token)
    assert session is not None
    generation = store.cache.generation
    await redis.client_kill_filter(_type="pubsub")
    await until(lambda: store.cache.generation != generation)
    # Deleted behind the gateways' back (no message): not served from a cache entry.
    await redis.delete(f"sm:session:{session.key}")
    assert await store.get(token) is None
    await until(lambda: store.cache.listening)
    assert (await redis.pubsub_numsub(CHANNEL))[0][1] >= 1


# ------------------------------------------------------------------- two gateway processes


@pytest.fixture(scope="module")
def second_gateway(stack: Stack, data_root: Any) -> Iterator[str]:
    with extra_gateway(stack.env, data_root / "session-cache-gateway.log", "gateway-cache") as url:
        yield url


def test_logout_under_load_ends_the_session_on_every_gateway_within_the_ttl(
    stack: Stack, second_gateway: str
) -> None:
    """Both gateways serve the session from their caches under concurrent requests; after a
    logout on one, that one refuses it at once and the other within a second (normally
    milliseconds: the invalidation message), and no request started later passes."""
    username = unique("cache")
    with stack.root() as root:
        created = root.post(
            "/api/users",
            json={
                "username": username,
                "email": f"{username}@example.test",
                "password": "cache-password",
                "role": "vendedor",
            },
        )
        assert created.status_code == 201, created.text
    with stack.login(username, "cache-password") as login:
        cookies = dict(login.cookies)
    gateways = (stack.base_url, second_gateway)
    logged_out_at: list[float] = []
    late_successes: list[tuple[str, float]] = []

    def hammer(base_url: str) -> None:
        """Requests until 20 of them started more than TTL after the logout."""
        after_bound = 0
        with httpx.Client(base_url=base_url, cookies=cookies, timeout=30) as client:
            while after_bound < 20:
                started = time.monotonic()
                status = client.get("/api/session").status_code
                if logged_out_at and started > logged_out_at[0] + TTL:
                    after_bound += 1
                    if status != 401:
                        late_successes.append((base_url, started - logged_out_at[0]))

    clients = [httpx.Client(base_url=url, cookies=cookies, timeout=30) for url in gateways]
    try:
        for client in clients:  # both caches hold the session
            assert client.get("/api/session").status_code == 200
        workers = [threading.Thread(target=hammer, args=(url,)) for url in gateways * 2]
        for worker in workers:
            worker.start()
        try:
            assert clients[0].post("/api/logout").status_code == 200
            logged_out_at.append(time.monotonic())
            # clients[0] dropped the cookie on logout; clients[1] still sends it.
            with httpx.Client(base_url=gateways[0], cookies=cookies, timeout=30) as same:
                assert same.get("/api/session").status_code == 401
            eventually(
                lambda: clients[1].get("/api/session").status_code == 401,
                timeout=TTL,
                what="the other gateway refusing the logged-out session",
            )
        finally:
            if not logged_out_at:
                logged_out_at.append(time.monotonic())  # let the workers finish
            for worker in workers:
                worker.join()
    finally:
        for client in clients:
            client.close()
    assert late_successes == []
