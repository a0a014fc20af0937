"""`GET /api/notifications/stream` (Server-Sent Events) end to end through the gateway(s)."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import httpx
import psutil
from redis.asyncio import Redis

from stockmanager.db import Database
from stockmanager.events import EventType
from tests.notifications.conftest import SECOND_HEARTBEAT, SECOND_LIFETIME, SecondSite
from tests.notifications.support import (
    Actor,
    SseStream,
    event_for,
    eventually,
    inject,
    new_actor,
    open_stream,
)
from tests.support.stack import Stack, unique


async def create_for(stack: Stack, admin: Actor, user_id: int, title: str) -> float:
    """Admin creates a notification; returns the moment the 201 arrived (perf_counter)."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        response = await client.post(
            "/api/notifications/create",
            json={"user_id": user_id, "title": title, "message": "m"},
            headers={"Cookie": f"session={admin.cookie}"},
        )
    assert response.status_code == 201, response.text
    return time.perf_counter()


async def post_as(stack: Stack, who: Actor, method: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        return await client.request(method, path, headers={"Cookie": f"session={who.cookie}"})


async def metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(url + "/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} missing from {url}/metrics"
    return float(found.group(1))


async def until_update_with(stream: SseStream, title: str, within: float = 3.0) -> float:
    """Wait for an `update` whose list contains `title`; returns its arrival time."""
    deadline = time.monotonic() + within
    while True:
        message = await stream.next_event("update", max(0.01, deadline - time.monotonic()))
        if any(n["title"] == title for n in message.data["notifications"]):
            return message.received_at


async def test_headers_and_init_payload(
    stack: Stack, http: aiohttp.ClientSession, admin: Actor, seller: Actor
) -> None:
    for number in range(7):
        await create_for(stack, admin, seller.user.id, f"i{number}")
    stream = await open_stream(http, stack.base_url, seller.cookie)
    try:
        assert stream.response.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["Cache-Control"] == "no-cache, no-transform"
        assert stream.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in stream.headers
        init = await stream.next()
        assert init is not None and init.event == "init"
        assert init.data["count"] == 7
        assert [n["title"] for n in init.data["notifications"]] == ["i6", "i5", "i4", "i3", "i2"]
        assert set(init.data["notifications"][0]) == {
            "id",
            "title",
            "message",
            "type",
            "action_url",
            "created_at",
        }
    finally:
        await stream.close()


async def test_update_reaches_every_tab_within_a_second(
    stack: Stack, http: aiohttp.ClientSession, admin: Actor, seller: Actor
) -> None:
    for number in range(11):
        await create_for(stack, admin, seller.user.id, f"u{number}")
    streams = [await open_stream(http, stack.base_url, seller.cookie) for _ in range(3)]
    try:
        for stream in streams:
            await stream.next_event("init")
        title = unique("nueva")
        answered = await create_for(stack, admin, seller.user.id, title)
        for stream in streams:
            update = await stream.next_event("update", 2.0)
            assert update.received_at - answered < 1.0
            assert update.data["count"] == 12
            assert len(update.data["notifications"]) == 10
            assert update.data["notifications"][0]["title"] == title
    finally:
        for stream in streams:
            await stream.close()


async def test_read_read_all_and_delete_push_updates(
    stack: Stack, http: aiohttp.ClientSession, admin: Actor, seller: Actor
) -> None:
    for number in range(3):
        await create_for(stack, admin, seller.user.id, f"r{number}")
    stream = await open_stream(http, stack.base_url, seller.cookie)
    try:
        init = await stream.next_event("init")
        first, second, third = (n["id"] for n in init.data["notifications"])
        await post_as(stack, seller, "POST", f"/api/notifications/{first}/read")
        assert (await stream.next_event("update")).data["count"] == 2
        await post_as(stack, admin, "DELETE", f"/api/notifications/{second}/delete")
        update = await stream.next_event("update")
        assert update.data["count"] == 1
        assert [n["id"] for n in update.data["notifications"]] == [third]
        await post_as(stack, seller, "POST", "/api/notifications/read-all")
        assert (await stream.next_event("update")).data == {"notifications": [], "count": 0}
    finally:
        await stream.close()


async def test_consumer_notifications_are_pushed_and_stay_private(
    stack: Stack, http: aiohttp.ClientSession, db: Database, redis: Redis
) -> None:
    alice, bob = await new_actor(stack), await new_actor(stack)
    alice_stream = await open_stream(http, stack.base_url, alice.cookie)
    bob_stream = await open_stream(http, stack.base_url, bob.cookie)
    try:
        await alice_stream.next_event("init")
        await bob_stream.next_event("init")
        for who, product in ((alice, "Alfajor"), (bob, "Bizcocho")):
            await inject(
                redis,
                event_for(
                    EventType.SALE_CREATED,
                    actor=who.user,
                    entity_type="sale",
                    entity_id=1,
                    data={
                        "sale_id": 1,
                        "vendor_id": who.user.id,
                        "items": [{"item_id": 1, "name": product, "quantity": 1}],
                    },
                ),
            )
        alice_update = await alice_stream.next_event("update")
        assert alice_update.data["count"] == 1
        assert "Alfajor" in alice_update.data["notifications"][0]["message"]
        # Bob's first update is about Bob's own sale: Alice's never reached his stream.
        bob_update = await bob_stream.next()
        assert bob_update is not None and bob_update.event == "update"
        assert bob_update.data["count"] == 1
        assert "Bizcocho" in bob_update.data["notifications"][0]["message"]
    finally:
        await alice_stream.close()
        await bob_stream.close()


async def test_heartbeat_after_each_quiet_interval(
    stack: Stack,
    second_site: SecondSite,
    http: aiohttp.ClientSession,
    admin: Actor,
    seller: Actor,
) -> None:
    stream = await open_stream(http, second_site.gateway_url, seller.cookie)
    try:
        opened = (await stream.next_event("init")).received_at
        beat = await stream.next(3.0)
        assert beat is not None and beat.event is None and beat.comment == "heartbeat"
        # (bounds allow for scheduling jitter on a loaded machine)
        assert SECOND_HEARTBEAT * 0.5 <= beat.received_at - opened < SECOND_HEARTBEAT + 1.0
        second = await stream.next(3.0)
        assert second is not None and second.comment == "heartbeat"
        assert second.received_at - beat.received_at >= SECOND_HEARTBEAT * 0.5
    finally:
        await stream.close()


async def test_stream_ends_after_its_lifetime(
    stack: Stack, second_site: SecondSite, http: aiohttp.ClientSession, seller: Actor
) -> None:
    stream = await open_stream(http, second_site.gateway_url, seller.cookie)
    try:
        opened = (await stream.next_event("init")).received_at
        while (message := await stream.next(SECOND_LIFETIME + 3.0)) is not None:
            assert message.comment == "heartbeat"
        assert SECOND_LIFETIME - 0.5 <= time.perf_counter() - opened < SECOND_LIFETIME + 2.0
    finally:
        await stream.close()


async def test_two_gateways_two_replicas_both_streams_updated(
    stack: Stack,
    second_site: SecondSite,
    http: aiohttp.ClientSession,
    admin: Actor,
    seller: Actor,
) -> None:
    before = await metric(second_site.notifications_url, "stockmanager_notifications_sse_streams")
    # Stream 1: first gateway -> the stack's notifications replica; stream 2: second gateway ->
    # the second notifications replica.
    one = await open_stream(http, stack.base_url, seller.cookie)
    two = await open_stream(http, second_site.gateway_url, seller.cookie)
    try:
        await one.next_event("init")
        await two.next_event("init")
        streams_here = await metric(
            second_site.notifications_url, "stockmanager_notifications_sse_streams"
        )
        assert streams_here == before + 1
        title = unique("doble")
        answered = await create_for(stack, admin, seller.user.id, title)
        for stream in (one, two):
            arrived = await until_update_with(stream, title)
            assert arrived - answered < 1.0
    finally:
        await one.close()
        await two.close()


def _established_to(pid: int, port: int) -> int:
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return sum(
        1
        for c in connections
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def test_closing_streams_releases_everything(
    stack: Stack, second_site: SecondSite, db: Database
) -> None:
    url = second_site.notifications_url
    names = ("streams", "users", "refresh_tasks")
    gateway_pid = second_site.supervisor.pid("gateway-2")
    service_port = int(url.rsplit(":", 1)[1])
    assert gateway_pid is not None

    async def released() -> bool:
        values = [await metric(url, f"stockmanager_notifications_sse_{n}") for n in names]
        return values == [0, 0, 0] and _established_to(gateway_pid, service_port) == 0

    await eventually(released, within=5.0)  # nothing left over from earlier tests
    actors = [await new_actor(stack) for _ in range(2)]
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        for _round in range(2):
            streams = await asyncio.gather(
                *(
                    open_stream(session, second_site.gateway_url, actors[i % 2].cookie)
                    for i in range(40)
                )
            )
            await asyncio.gather(*(s.next_event("init") for s in streams))
            assert await metric(url, "stockmanager_notifications_sse_streams") == 40
            assert await metric(url, "stockmanager_notifications_sse_users") == 2
            assert _established_to(gateway_pid, service_port) >= 40
            await asyncio.gather(*(s.close() for s in streams))
            await eventually(released, within=5.0)

        # Clients that hang up while the request is still in flight (before or while the
        # stream starts) leave nothing behind either.
        for delay in (0.0, 0.01, 0.05):
            pending = [
                asyncio.create_task(open_stream(session, second_site.gateway_url, actors[0].cookie))
                for _ in range(10)
            ]
            await asyncio.sleep(delay)  # a deliberate race, not synchronisation
            for task in pending:
                task.cancel()
            for outcome in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(outcome, SseStream):
                    await outcome.close()
        await eventually(released, within=5.0)
    opened = await metric(url, "stockmanager_notifications_sse_streams_opened_total")
    closed = await metric(url, "stockmanager_notifications_sse_streams_closed_total")
    assert opened == closed


async def test_more_streams_than_the_gateways_request_pool(
    stack: Stack, http: aiohttp.ClientSession, admin: Actor, seller: Actor
) -> None:
    """Each open stream holds an upstream connection in the gateway; 120 of them (more than the
    gateway's default pool of 100 for ordinary requests) must all open, and ordinary requests
    must keep flowing meanwhile. Twelve users with ten streams each (a user may open ten)."""
    url = stack.service_urls["notifications"][0]
    users = [seller, *[await new_actor(stack) for _ in range(11)]]
    # Opened 20 at a time: a burst of >100 simultaneous requests is a different matter (the
    # gateway's Redis pool refuses it).
    opening = asyncio.Semaphore(20)

    async def one(i: int) -> SseStream:
        async with opening:
            return await open_stream(http, stack.base_url, users[i % len(users)].cookie)

    streams = await asyncio.gather(*(one(i) for i in range(120)))
    try:
        bad = [
            (s.response.status, await s.response.text())
            for s in streams
            if s.response.status != 200
        ][:3]
        assert not bad, bad
        await asyncio.gather(*(s.next_event("init", 10.0) for s in streams))
        started = time.perf_counter()
        response = await post_as(stack, seller, "GET", "/api/notifications/unread")
        assert response.status_code == 200
        assert time.perf_counter() - started < 2.0
        title = unique("muchas")
        for user in users:
            await create_for(stack, admin, user.user.id, title)
        await asyncio.gather(*(until_update_with(s, title) for s in streams))
    finally:
        await asyncio.gather(*(s.close() for s in streams))

    async def released() -> bool:
        return await metric(url, "stockmanager_notifications_sse_streams") == 0

    await eventually(released, within=5.0)


async def test_streams_recover_when_the_pubsub_connection_drops(
    stack: Stack, http: aiohttp.ClientSession, redis: Redis, admin: Actor, seller: Actor
) -> None:
    """Redis drops every pub/sub connection (as on a failover); a change committed while the
    subscriptions are down still reaches the open stream once they are back."""
    url = stack.service_urls["notifications"][0]
    stream = await open_stream(http, stack.base_url, seller.cookie)
    try:
        await stream.next_event("init")
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        title = unique("tras-caida")
        await create_for(stack, admin, seller.user.id, title)  # may be published into the void
        await until_update_with(stream, title, within=5.0)

        async def subscribed() -> bool:
            return await metric(url, "stockmanager_notifications_fanout_subscribed") == 1

        await eventually(subscribed)
        # And live delivery works again afterwards.
        again = unique("de-nuevo")
        answered = await create_for(stack, admin, seller.user.id, again)
        assert await until_update_with(stream, again) - answered < 1.0
    finally:
        await stream.close()
