"""Acceptance of issue 6 end to end: real sales and product changes through the gateway, the
products/sales outboxes, the event stream, the notifications consumer, REST and SSE."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest_asyncio
from redis.asyncio import Redis

from tests.notifications.conftest import SecondSite
from tests.notifications.support import (
    Actor,
    consumed,
    eventually,
    new_actor,
    open_stream,
    stream_message,
)
from tests.support.stack import Stack, unique


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


def as_(actor: Actor | str) -> dict[str, str]:
    cookie = actor if isinstance(actor, str) else actor.cookie
    return {"Cookie": f"session={cookie}"}


async def new_product(
    api: httpx.AsyncClient, admin: Actor, *, quantity: int, min_quantity: int
) -> dict[str, Any]:
    barcode = str(int(time.time() * 1_000_000))[-13:]
    name = unique("P")[:25]
    response = await api.post(
        "/api/products",
        json={
            "barcode": barcode,
            "name": name,
            "quantity": quantity,
            "min_quantity": min_quantity,
            "price": 10,
        },
        headers=as_(admin),
    )
    assert response.status_code == 201, response.text
    found = await api.get("/api/items", params={"q": barcode}, headers=as_(admin))
    [product] = [p for p in found.json() if p["barcode"] == barcode]
    return {"id": product["id"], "name": name}


async def sell(api: httpx.AsyncClient, seller: Actor, *lines: tuple[int, int]) -> tuple[int, float]:
    response = await api.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": item, "quantity": qty} for item, qty in lines]},
        headers=as_(seller),
    )
    assert response.status_code == 201, response.text
    return response.json()["sale_id"], time.perf_counter()


async def titles(api: httpx.AsyncClient, who: Actor | str) -> list[dict[str, Any]]:
    response = await api.get("/api/notifications/all", params={"limit": 100}, headers=as_(who))
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def low_stock_for(api: httpx.AsyncClient, who: Actor | str, name: str) -> int:
    return sum(
        1
        for n in await titles(api, who)
        if n["title"] == "Stock bajo" and n["message"].startswith(f"El producto {name} ")
    )


async def settled(redis: Redis, sale_id: int) -> None:
    """Everything the sale's transaction published has been consumed by the notifications
    group (its events are relayed together, so waiting past the sale event covers them)."""
    message_id, _ = await eventually(
        lambda: stream_message(redis, "sale.created", lambda e: e["data"]["sale_id"] == sale_id)
    )
    latest = await redis.xrevrange("stockmanager:events", count=1)
    last_id = latest[0][0].decode() if latest else message_id
    await consumed(redis, last_id)


async def test_bulk_sale_notifies_the_seller_within_a_second(
    api: httpx.AsyncClient, stack: Stack, admin: Actor, seller: Actor
) -> None:
    first = await new_product(api, admin, quantity=50, min_quantity=1)
    second = await new_product(api, admin, quantity=50, min_quantity=1)
    _, answered = await sell(api, seller, (first["id"], 2), (second["id"], 1))

    async def shown() -> dict[str, Any] | None:
        response = await api.get("/api/notifications/unread", headers=as_(seller))
        items = response.json()["notifications"]
        return items[0] if items else None

    item = await eventually(shown, within=1.0, interval=0.02)
    assert time.perf_counter() - answered < 1.0
    assert item["title"] == "Venta registrada"
    assert item["type"] == "success"
    assert item["message"] == (
        f"Venta registrada de los productos {first['name']}, {second['name']} con cantidades 2, 1."
    )


async def test_low_stock_crossing_notifies_seller_admins_and_root_once_per_crossing(
    api: httpx.AsyncClient,
    stack: Stack,
    redis: Redis,
    admin: Actor,
    seller: Actor,
    root_cookie: str,
) -> None:
    root = root_cookie
    other_admin = await new_actor(stack, "admin")
    bystander = await new_actor(stack)
    product = await new_product(api, admin, quantity=10, min_quantity=5)
    name, item_id = product["name"], product["id"]
    everyone = (seller, admin, other_admin, root)

    sale_id, _ = await sell(api, seller, (item_id, 6))  # 10 -> 4: crosses into low stock
    await settled(redis, sale_id)
    for who in everyone:
        assert await low_stock_for(api, who, name) == 1
    [note] = [n for n in await titles(api, seller) if n["title"] == "Stock bajo"]
    assert note["message"] == f"El producto {name} (ID: {item_id}) tiene stock bajo (4 unidades)."
    assert note["type"] == "warning"
    assert await low_stock_for(api, bystander, name) == 0

    sale_id, _ = await sell(api, seller, (item_id, 1))  # 4 -> 3: still low, no new crossing
    await settled(redis, sale_id)
    for who in everyone:
        assert await low_stock_for(api, who, name) == 1

    restock = await api.put(f"/api/products/{item_id}", json={"quantity": 20}, headers=as_(admin))
    assert restock.status_code == 200, restock.text
    sale_id, _ = await sell(api, seller, (item_id, 16))  # 20 -> 4: a second crossing
    await settled(redis, sale_id)
    for who in everyone:
        assert await low_stock_for(api, who, name) == 2


async def test_product_changes_through_the_api_notify_the_admin(
    api: httpx.AsyncClient, stack: Stack, admin: Actor
) -> None:
    product = await new_product(api, admin, quantity=10, min_quantity=1)
    disabled = await api.delete(f"/api/products/{product['id']}", headers=as_(admin))
    assert disabled.status_code == 200

    added = f"El producto '{product['name']}' ha sido agregado al inventario."

    async def got_both() -> list[dict[str, Any]] | None:
        notes = await titles(api, admin)
        mine = [n for n in notes if n["message"] == added]
        # The disable notification carries no name: it is the one right after ours.
        later = [n for n in notes if mine and n["id"] > mine[0]["id"]]
        return mine + later if mine and later else None

    mine, *later = await eventually(got_both)
    assert (mine["title"], mine["type"]) == ("Producto agregado", "success")
    assert ("Producto deshabilitado", "El producto ha sido deshabilitado.", "warning") in [
        (n["title"], n["message"], n["type"]) for n in later
    ]


async def test_two_gateways_two_replicas_sale_updates_both_streams(
    stack: Stack,
    second_site: SecondSite,
    http: aiohttp.ClientSession,
    api: httpx.AsyncClient,
    admin: Actor,
    seller: Actor,
) -> None:
    product = await new_product(api, admin, quantity=100, min_quantity=1)
    one = await open_stream(http, stack.base_url, seller.cookie)
    two = await open_stream(http, second_site.gateway_url, seller.cookie)
    try:
        assert (await one.next_event("init")).data["count"] == 0
        assert (await two.next_event("init")).data["count"] == 0
        _, answered = await sell(api, seller, (product["id"], 3))
        for stream in (one, two):
            update = await stream.next_event("update", 2.0)
            assert update.received_at - answered < 1.0
            assert update.data["count"] == 1
            [item] = update.data["notifications"]
            assert item["title"] == "Venta registrada"
            assert item["message"] == (
                f"Venta registrada de los productos {product['name']} con cantidades 3."
            )
    finally:
        await one.close()
        await two.close()
