"""The notifications endpoints answer what their OpenAPI declarations say, and malformed input
is a 400 JSON error (never a 500), through the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio

from services.notifications.api import router
from services.notifications.schemas import StreamPayload
from tests.audit.documented import assert_documented, assert_matches_model
from tests.notifications.support import Actor, open_stream
from tests.support.stack import Stack, unique

CREATE = "/api/notifications/create"
READ = "/api/notifications/{notification_id}/read"
DELETE = "/api/notifications/{notification_id}/delete"


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


def as_(actor: Actor) -> dict[str, str]:
    return {"Cookie": f"session={actor.cookie}"}


async def test_every_answer_matches_its_declaration(
    api: httpx.AsyncClient, admin: Actor, seller: Actor
) -> None:
    title = unique("contrato")
    created = await api.post(
        CREATE,
        json={"user_id": seller.user.id, "title": title, "message": "m", "action_url": "/x"},
        headers=as_(admin),
    )
    assert created.status_code == 201
    assert_documented(router, "POST", CREATE, created)
    plain = await api.post(
        CREATE,
        json={"user_id": str(seller.user.id), "title": title + "b", "message": "m", "type": None},
        headers=as_(admin),
    )
    assert plain.status_code == 201

    unread = await api.get("/api/notifications/unread", headers=as_(seller))
    body = assert_documented(router, "GET", "/api/notifications/unread", unread)
    assert {item["action_url"] for item in body["notifications"]} == {"/x", None}

    listed = await api.get("/api/notifications/all", headers=as_(seller))
    items = assert_documented(router, "GET", "/api/notifications/all", listed)
    first = items[0]["id"]

    read = await api.post(f"/api/notifications/{first}/read", headers=as_(seller))
    assert_documented(router, "POST", READ, read)
    again = await api.get("/api/notifications/all", params={"limit": 1}, headers=as_(seller))
    assert assert_documented(router, "GET", "/api/notifications/all", again)[0]["is_read"] == 1
    read_all = await api.post("/api/notifications/read-all", headers=as_(seller))
    assert_documented(router, "POST", "/api/notifications/read-all", read_all)

    deleted = await api.delete(f"/api/notifications/{first}/delete", headers=as_(admin))
    assert_documented(router, "DELETE", DELETE, deleted)
    gone = await api.delete(f"/api/notifications/{first}/delete", headers=as_(admin))
    assert gone.status_code == 404
    assert_documented(router, "DELETE", DELETE, gone)
    missing = await api.post(f"/api/notifications/{first}/read", headers=as_(seller))
    assert missing.status_code == 404
    assert_documented(router, "POST", READ, missing)

    nobody = await api.post(
        CREATE, json={"user_id": 987654321012, "title": "t", "message": "m"}, headers=as_(admin)
    )
    assert nobody.status_code == 404
    assert_documented(router, "POST", CREATE, nobody)
    bad = await api.post(CREATE, json={"title": "t"}, headers=as_(admin))
    assert bad.status_code == 400
    assert_documented(router, "POST", CREATE, bad)


async def test_stream_is_documented_event_stream(
    api: httpx.AsyncClient, stack: Stack, seller: Actor, admin: Actor
) -> None:
    await api.post(
        CREATE, json={"user_id": seller.user.id, "title": "s", "message": "m"}, headers=as_(admin)
    )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        stream = await open_stream(http, stack.base_url, seller.cookie)
        try:
            assert stream.response.status == 200
            init = await stream.next_event("init")
        finally:
            await stream.close()
    response = httpx.Response(200, headers=dict(stream.headers))
    assert_documented(router, "GET", "/api/notifications/stream", response)
    assert_matches_model(StreamPayload, init.data)
    assert init.data["count"] >= 1


BIG = 99999999999999999999999


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Se requiere un cuerpo JSON"),
        (b"[]", "El cuerpo de la petici\u00f3n debe ser un objeto JSON"),
        (b'[{"user_id": 1}]', "El cuerpo de la petici\u00f3n debe ser un objeto JSON"),
        (b'{"user_id": 1, "title": "\xff", "message": "m"}', None),
        (b'{"user_id": 1, "title": "t\\u0000", "message": "m"}', None),
        (b'{"user_id": 1, "title": "t", "message": "m", "action_url": "/a\\u0000"}', None),
        (b'{"user_id": %d, "title": "t", "message": "m"}' % BIG, "user_id inv\u00e1lido"),
        (b'{"user_id": -5, "title": "t", "message": "m"}', "user_id inv\u00e1lido"),
        (b'{"user_id": 1.5, "title": "t", "message": "m"}', "user_id inv\u00e1lido"),
        (b'{"user_id": [1], "title": "t", "message": "m"}', "user_id inv\u00e1lido"),
        (b'{"user_id": {"a": 1}, "title": "t", "message": "m"}', "user_id inv\u00e1lido"),
        (b'{"user_id": true, "title": "t", "message": "m"}', "user_id inv\u00e1lido"),
        (
            b'{"user_id": 1, "title": ["t"], "message": "m"}',
            "El t\u00edtulo y el mensaje deben ser texto",
        ),
        (
            b'{"user_id": 1, "title": "t", "message": {"m": 1}}',
            "El t\u00edtulo y el mensaje deben ser texto",
        ),
        (b'{"user_id": 1, "title": "t", "message": "m", "type": 5}', None),
        (
            b'{"user_id": 1, "title": "t", "message": "m", "action_url": []}',
            "action_url inv\u00e1lido",
        ),
        (b'{"user_id": 1, "title": "t", "message": "' + b"m" * 2001 + b'"}', None),
    ],
)
async def test_malformed_create_bodies_are_400(
    api: httpx.AsyncClient, admin: Actor, content: bytes, message: str | None
) -> None:
    response = await api.post(
        CREATE, content=content, headers={**as_(admin), "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["code"], str)
    if message is not None:
        assert body["error"] == message
    assert_documented(router, "POST", CREATE, response)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=%00", 400),
        ("offset=a%00b", 400),
        ("limit=abc&offset=-5", 200),
        (f"limit={BIG}&offset={BIG}", 200),
        ("limit=%C2%B2&offset=%FF", 200),
        ("unknown=%00", 400),
    ],
)
async def test_odd_list_parameters_fall_back_or_are_400(
    api: httpx.AsyncClient, seller: Actor, query: str, status: int
) -> None:
    response = await api.get(f"/api/notifications/all?{query}", headers=as_(seller))
    assert response.status_code == status, response.text
    assert_documented(router, "GET", "/api/notifications/all", response)


async def test_huge_or_odd_ids_are_404(api: httpx.AsyncClient, seller: Actor, admin: Actor) -> None:
    for path in (f"/api/notifications/{BIG}/read", "/api/notifications/%FF/read"):
        response = await api.post(path, headers=as_(seller))
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/json")
    response = await api.delete(f"/api/notifications/{2**63}/delete", headers=as_(admin))
    assert response.status_code == 404
