"""REST endpoints of the notifications service, through the gateway."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest_asyncio
from redis.asyncio import Redis

from stockmanager.db import Database
from tests.notifications.support import Actor, create_user, eventually, find_stream_event, new_actor
from tests.support.stack import Stack, unique

LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
BUSINESS_TZ = ZoneInfo("America/Argentina/Buenos_Aires")


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


def as_(actor: Actor | str) -> dict[str, str]:
    cookie = actor if isinstance(actor, str) else actor.cookie
    return {"Cookie": f"session={cookie}"}


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == message
    assert isinstance(body["code"], str)


async def create(
    api: httpx.AsyncClient, by: Actor | str, user_id: int, title: str, **extra: object
) -> httpx.Response:
    body = {"user_id": user_id, "title": title, "message": f"mensaje de {title}", **extra}
    return await api.post("/api/notifications/create", json=body, headers=as_(by))


async def unread(api: httpx.AsyncClient, who: Actor) -> dict:
    response = await api.get("/api/notifications/unread", headers=as_(who))
    assert response.status_code == 200, response.text
    return response.json()


async def all_of(api: httpx.AsyncClient, who: Actor, **params: object) -> list[dict]:
    response = await api.get("/api/notifications/all", params=params, headers=as_(who))
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    return body


async def test_create_then_unread_shows_it_field_by_field(
    api: httpx.AsyncClient, admin: Actor, seller: Actor
) -> None:
    before = datetime.now(BUSINESS_TZ).replace(tzinfo=None, microsecond=0)
    response = await create(
        api, admin, seller.user.id, "Hola", type="warning", action_url="/ventas/1"
    )
    assert response.status_code == 201
    assert response.json() == {"message": "Notificación creada exitosamente"}
    body = await unread(api, seller)
    assert body["unread_count"] == 1
    [item] = body["notifications"]
    assert set(item) == {"id", "title", "message", "type", "action_url", "created_at"}
    assert isinstance(item["id"], int)
    assert item["title"] == "Hola"
    assert item["message"] == "mensaje de Hola"
    assert item["type"] == "warning"
    assert item["action_url"] == "/ventas/1"
    assert LOCAL_TIME.match(item["created_at"])
    created = datetime.strptime(item["created_at"], "%Y-%m-%d %H:%M:%S")
    assert before - timedelta(seconds=2) <= created <= before + timedelta(seconds=30)


async def test_defaults_and_root_may_create(
    api: httpx.AsyncClient, root_cookie: str, seller: Actor
) -> None:
    response = await create(api, root_cookie, seller.user.id, "Por defecto")
    assert response.status_code == 201
    [item] = (await unread(api, seller))["notifications"]
    assert item["type"] == "info" and item["action_url"] is None


async def test_unread_is_newest_first_and_capped_at_ten(
    api: httpx.AsyncClient, admin: Actor, seller: Actor
) -> None:
    for number in range(12):
        assert (await create(api, admin, seller.user.id, f"n{number}")).status_code == 201
    body = await unread(api, seller)
    assert body["unread_count"] == 12
    assert [n["title"] for n in body["notifications"]] == [f"n{i}" for i in range(11, 1, -1)]


async def test_all_pages_with_offset_and_clamped_limit(
    api: httpx.AsyncClient, admin: Actor, seller: Actor
) -> None:
    for number in range(5):
        assert (await create(api, admin, seller.user.id, f"a{number}")).status_code == 201
    everything = await all_of(api, seller)
    assert [n["title"] for n in everything] == ["a4", "a3", "a2", "a1", "a0"]
    assert set(everything[0]) == {
        "id",
        "title",
        "message",
        "type",
        "action_url",
        "created_at",
        "is_read",
    }
    assert all(n["is_read"] == 0 for n in everything)
    assert [n["title"] for n in await all_of(api, seller, limit=2, offset=1)] == ["a3", "a2"]
    # limit is clamped to [1, 100]; junk falls back to the defaults (20 / 0).
    assert [n["title"] for n in await all_of(api, seller, limit=0)] == ["a4"]
    assert [n["title"] for n in await all_of(api, seller, limit=-5)] == ["a4"]
    assert len(await all_of(api, seller, limit=1000)) == 5
    assert len(await all_of(api, seller, limit="x", offset="y")) == 5
    assert await all_of(api, seller, offset=50) == []


async def test_all_limit_never_exceeds_one_hundred(
    api: httpx.AsyncClient, db: Database, seller: Actor
) -> None:
    from sqlalchemy import text

    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO notifications.notifications (user_id, title, message) "
                "SELECT :u, 'bulk ' || g, 'm' FROM generate_series(1, 105) AS g"
            ),
            {"u": seller.user.id},
        )
    assert len(await all_of(api, seller, limit=500)) == 100
    assert len(await all_of(api, seller)) == 20


async def test_mark_read_own_only(
    api: httpx.AsyncClient, admin: Actor, seller: Actor, stack: Stack, db: Database
) -> None:
    other = await new_actor(stack)
    await create(api, admin, seller.user.id, "mía")
    [mine] = (await unread(api, seller))["notifications"]

    # Another user reading or marking it: indistinguishable from a missing id.
    stolen = await api.post(f"/api/notifications/{mine['id']}/read", headers=as_(other))
    assert_error(stolen, 404, "Notificación no encontrada")
    assert (await unread(api, seller))["unread_count"] == 1
    assert all(n["id"] != mine["id"] for n in await all_of(api, other))
    # Admins cannot mark other users' notifications either.
    by_admin = await api.post(f"/api/notifications/{mine['id']}/read", headers=as_(admin))
    assert_error(by_admin, 404, "Notificación no encontrada")

    response = await api.post(f"/api/notifications/{mine['id']}/read", headers=as_(seller))
    assert response.status_code == 200
    assert response.json() == {"message": "Notificación marcada como leída"}
    assert (await unread(api, seller)) == {"notifications": [], "unread_count": 0}
    [item] = await all_of(api, seller)
    assert item["is_read"] == 1
    # Marking again is harmless.
    again = await api.post(f"/api/notifications/{mine['id']}/read", headers=as_(seller))
    assert again.status_code == 200

    missing = await api.post("/api/notifications/999999999999/read", headers=as_(seller))
    assert_error(missing, 404, "Notificación no encontrada")
    huge = await api.post(f"/api/notifications/{2**70}/read", headers=as_(seller))
    assert huge.status_code == 404  # the gateway's route map only matches ids up to 18 digits


async def test_read_all_marks_only_the_callers(
    api: httpx.AsyncClient, admin: Actor, seller: Actor, stack: Stack, db: Database
) -> None:
    other = await new_actor(stack)
    for number in range(3):
        await create(api, admin, seller.user.id, f"s{number}")
    await create(api, admin, other.user.id, "del otro")
    response = await api.post("/api/notifications/read-all", headers=as_(seller))
    assert response.status_code == 200
    assert response.json() == {"message": "Todas las notificaciones marcadas como leídas"}
    assert (await unread(api, seller))["unread_count"] == 0
    assert [n["is_read"] for n in await all_of(api, seller)] == [1, 1, 1]
    other_unread = await unread(api, other)
    assert other_unread["unread_count"] == 1
    assert other_unread["notifications"][0]["title"] == "del otro"


async def test_create_validation(
    api: httpx.AsyncClient, admin: Actor, seller: Actor, stack: Stack
) -> None:
    missing = "Faltan campos requeridos"
    for body in (
        {"title": "t", "message": "m"},
        {"user_id": seller.user.id, "message": "m"},
        {"user_id": seller.user.id, "title": "t"},
        {"user_id": seller.user.id, "title": "", "message": "m"},
        {"user_id": seller.user.id, "title": "   ", "message": "m"},
        {"user_id": 0, "title": "t", "message": "m"},
        {"user_id": None, "title": "t", "message": "m"},
    ):
        response = await api.post("/api/notifications/create", json=body, headers=as_(admin))
        assert_error(response, 400, missing)

    bad_type = await create(api, admin, seller.user.id, "t", type="urgent")
    assert_error(bad_type, 400, "Tipo de notificación inválido (info, warning, success o error)")
    assert_error(
        await create(api, admin, seller.user.id, "t", type="INFO"),
        400,
        "Tipo de notificación inválido (info, warning, success o error)",
    )
    assert_error(await create(api, admin, "abc", "t"), 400, "user_id inválido")  # type: ignore[arg-type]
    assert_error(await create(api, admin, True, "t"), 400, "user_id inválido")  # type: ignore[arg-type]
    assert_error(
        await create(api, admin, seller.user.id, "x" * 201),
        400,
        "El título no puede superar 200 caracteres",
    )
    assert_error(
        await create(api, admin, seller.user.id, "t", action_url=5), 400, "action_url inválido"
    )
    not_object = await api.post("/api/notifications/create", json=[1], headers=as_(admin))
    assert not_object.status_code == 400

    unknown = await create(api, admin, 987654321012, "t")
    assert_error(unknown, 404, "Usuario no encontrado")
    disabled = await create_user(stack, status=0)
    assert_error(await create(api, admin, disabled.id, "t"), 400, "El usuario no está activo")
    pending = await create_user(stack, application="pending")
    assert_error(await create(api, admin, pending.id, "t"), 400, "El usuario no está activo")
    # Nothing was written by any refused request.
    assert (await unread(api, seller))["unread_count"] == 0

    # A user id given as a numeric string is accepted (upstream stored whatever it got).
    ok = await create(api, admin, str(seller.user.id), "texto")  # type: ignore[arg-type]
    assert ok.status_code == 201


async def test_roles(api: httpx.AsyncClient, seller: Actor, admin: Actor) -> None:
    await create(api, admin, seller.user.id, "x")
    [item] = (await unread(api, seller))["notifications"]
    for method, path in (
        ("GET", "/api/notifications/unread"),
        ("GET", "/api/notifications/all"),
        ("POST", f"/api/notifications/{item['id']}/read"),
        ("POST", "/api/notifications/read-all"),
        ("POST", "/api/notifications/create"),
        ("DELETE", f"/api/notifications/{item['id']}/delete"),
        ("GET", "/api/notifications/stream"),
    ):
        assert_error(await api.request(method, path), 401, "No autenticado")
    assert_error(await create(api, seller, seller.user.id, "x"), 403, "Permiso denegado")
    forbidden = await api.delete(f"/api/notifications/{item['id']}/delete", headers=as_(seller))
    assert_error(forbidden, 403, "Permiso denegado")
    assert (await unread(api, seller))["unread_count"] == 1


async def test_delete(api: httpx.AsyncClient, admin: Actor, seller: Actor, redis: Redis) -> None:
    title = unique("borrar")
    await create(api, admin, seller.user.id, title, type="error")
    [item] = (await unread(api, seller))["notifications"]
    response = await api.delete(f"/api/notifications/{item['id']}/delete", headers=as_(admin))
    assert response.status_code == 200
    assert response.json() == {"message": "Notificación eliminada exitosamente"}
    assert await all_of(api, seller) == []
    again = await api.delete(f"/api/notifications/{item['id']}/delete", headers=as_(admin))
    assert_error(again, 404, "Notificación no encontrada")

    deleted = await eventually(
        lambda: find_stream_event(
            redis, "notification.deleted", lambda e: e["entity"]["id"] == item["id"]
        )
    )
    assert deleted["actor"]["id"] == admin.user.id
    assert deleted["data"] == {"user_id": seller.user.id, "title": title, "type": "error"}
    assert deleted["before"]["title"] == title


async def test_manual_create_publishes_an_audit_event(
    api: httpx.AsyncClient, admin: Actor, seller: Actor, redis: Redis
) -> None:
    title = unique("auditada")
    assert (await create(api, admin, seller.user.id, title)).status_code == 201
    created = await eventually(
        lambda: find_stream_event(
            redis, "notification.created", lambda e: e["data"].get("title") == title
        )
    )
    assert created["actor"] == {
        "id": admin.user.id,
        "username": admin.user.username,
        "role": "admin",
    }
    assert created["entity"]["type"] == "notification"
    assert isinstance(created["entity"]["id"], int)
    assert created["data"] == {"user_id": seller.user.id, "title": title, "type": "info"}
