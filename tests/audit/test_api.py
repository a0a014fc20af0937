"""The three audit endpoints through the gateway, fed by events on the real stream."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from stockmanager.db import Database
from stockmanager.events import Event, EventType
from tests.audit.support import (
    User,
    an_event,
    as_root,
    assert_error,
    event_at,
    fake_user,
    login,
    publish,
    wait_for_records,
)
from tests.support.stack import Stack, unique


def fake_product_id() -> int:
    return 9_000_000_000 + random.randrange(10**9)


async def publish_and_wait(redis: Redis, db: Database, events: list[Event]) -> dict[str, Any]:
    await publish(redis, events)
    return await wait_for_records(db, [e.id for e in events])


# --- access ----------------------------------------------------------------------------------


def test_anonymous_is_401(stack: Stack) -> None:
    with stack.client() as client:
        for path in ("/api/user/1", "/api/all", "/api/entity/product/1"):
            assert_error(client.get(path), 401, "No autenticado")


def test_who_may_read_what(
    stack: Stack, root_user: User, vendedor: User, other_vendedor: User, admin: User
) -> None:
    with login(stack, vendedor) as client:
        assert client.get(f"/api/user/{vendedor.id}").status_code == 200
        assert_error(client.get(f"/api/user/{other_vendedor.id}"), 403, "Permiso denegado")
        assert_error(client.get("/api/all"), 403, "Permiso denegado")
        assert_error(client.get("/api/entity/product/1"), 403, "Permiso denegado")
    with login(stack, admin) as client:
        # Admins read entity trails and their own history, not other users' (upstream rule).
        assert client.get(f"/api/user/{admin.id}").status_code == 200
        assert_error(client.get(f"/api/user/{vendedor.id}"), 403, "Permiso denegado")
        assert_error(client.get(f"/api/user/{root_user.id}"), 403, "Permiso denegado")
        assert_error(client.get("/api/all"), 403, "Permiso denegado")
        trail = client.get("/api/entity/product/1")
        assert trail.status_code == 200 and trail.json()["entity_type"] == "product"
    with as_root(stack) as client:
        assert client.get(f"/api/user/{vendedor.id}").status_code == 200
        assert client.get("/api/all", params={"limit": 1}).status_code == 200


def test_service_enforces_self_or_root_without_the_gateway(
    stack: Stack, vendedor: User, admin: User
) -> None:
    # The gateway only checks login for /api/user/<id>; the service enforces the rest.
    import httpx

    from stockmanager.identity import IDENTITY_HEADER, sign_identity

    secret = stack.env["STOCKMANAGER_INTERNAL_SECRET"]
    url = stack.service_urls["audit"][0]
    with httpx.Client(base_url=url, timeout=10) as client:
        assert_error(client.get(f"/api/user/{vendedor.id}"), 401)
        signed = sign_identity(admin.identity(), secret)
        assert_error(
            client.get(f"/api/user/{vendedor.id}", headers={IDENTITY_HEADER: signed}),
            403,
            "Permiso denegado",
        )
        assert_error(client.get("/api/all", headers={IDENTITY_HEADER: signed}), 403)
        seller = sign_identity(vendedor.identity(), secret)
        assert_error(client.get("/api/entity/sale/1", headers={IDENTITY_HEADER: seller}), 403)


# --- lists: shape, order, filters --------------------------------------------------------------


async def test_history_shape_order_and_tie_break(stack: Stack, redis: Redis, db: Database) -> None:
    actor = fake_user("admin")
    product = fake_product_id()
    created = an_event(
        EventType.PRODUCT_CREATED,
        actor,
        "product",
        product,
        after={"id": product, "name": "Mate", "price": 99.5},
    )
    first = event_at(created, "2020-03-01T12:00:00+00:00")
    # Two events at the same instant: the later record (higher id) comes first.
    tie_a = event_at(
        an_event(EventType.LOGIN_SUCCEEDED, actor, "user", actor.id), "2020-03-02T12:00:00+00:00"
    )
    tie_b = event_at(
        an_event(EventType.LOGOUT, actor, "user", actor.id), "2020-03-02T12:00:00+00:00"
    )
    rows = await publish_and_wait(redis, db, [first, tie_a, tie_b])
    with as_root(stack) as client:
        body = client.get(f"/api/user/{actor.id}").json()
    assert body["total"] == 3
    assert [r["action"] for r in body["records"]] == ["logout", "login", "create"]
    assert body["records"][0]["id"] > body["records"][1]["id"]
    record = body["records"][2]
    assert record == {
        "id": rows[first.id].id,
        "user_id": actor.id,
        "username": actor.username,
        "action": "create",
        "entity_type": "product",
        "entity_id": product,
        "description": "Nuevo Producto creado — Nombre: 'Mate', Precio: '$99.50'",
        "timestamp": "2020-03-01T09:00:00-03:00",  # business time zone, ISO with T
        "status": "success",
        "role": "admin",
        "ip_address": "198.51.100.7",
        "request_id": first.request_id,
        "event_type": "product.created",
        "old_value": None,
        "new_value": {"id": product, "name": "Mate", "price": 99.5},
    }


async def test_filters_action_dates_limit_offset(stack: Stack, redis: Redis, db: Database) -> None:
    actor = fake_user()
    times = [
        "2020-04-01T12:00:00+00:00",  # 09:00 local on the 1st
        "2020-04-02T02:30:00+00:00",  # 23:30 local on the 1st (UTC already the 2nd)
        "2020-04-02T15:00:00+00:00",  # 12:00 local on the 2nd
        "2020-04-03T15:00:00+00:00",  # 12:00 local on the 3rd
    ]
    kinds = [
        EventType.LOGIN_SUCCEEDED,
        EventType.PRODUCT_UPDATED,
        EventType.PRODUCT_UPDATED,
        EventType.LOGOUT,
    ]
    events = [
        event_at(an_event(kind, actor, "product", 1, before={"price": 1}, after={"price": 2}), at)
        for kind, at in zip(kinds, times, strict=True)
    ]
    await publish_and_wait(redis, db, events)

    def fetch(**params: Any) -> dict[str, Any]:
        with as_root(stack) as client:
            response = client.get(f"/api/user/{actor.id}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def stamps(body: dict[str, Any]) -> list[str]:
        return [r["timestamp"] for r in body["records"]]

    # action: case-insensitive, and it really filters (upstream's never matched).
    assert fetch(action="UPDATE")["total"] == 2
    assert {r["action"] for r in fetch(action="Update")["records"]} == {"update"}
    assert fetch(action="delete") == {"total": 0, "records": []}
    # Dates are whole business days: the 23:30 local event belongs to the 1st.
    day_one = fetch(**{"from": "2020-04-01", "to": "2020-04-01"})
    assert stamps(day_one) == ["2020-04-01T23:30:00-03:00", "2020-04-01T09:00:00-03:00"]
    assert fetch(**{"from": "2020-04-02"})["total"] == 2
    # Timestamps: local when naive, inclusive at both ends; Z and offsets accepted.
    assert fetch(**{"from": "2020-04-01T23:30:00", "to": "2020-04-02T12:00:00"})["total"] == 2
    assert fetch(**{"to": "2020-04-01T12:00:00Z"})["total"] == 1
    assert fetch(**{"from": "2020-04-03T12:00:00-03:00"})["total"] == 1
    # limit/offset page through newest-first; total counts every match.
    page = fetch(limit="2", offset="1")
    assert page["total"] == 4 and len(page["records"]) == 2
    assert stamps(page) == ["2020-04-02T12:00:00-03:00", "2020-04-01T23:30:00-03:00"]
    assert len(fetch(limit="0")["records"]) == 1  # clamped to [1, 500]
    assert len(fetch(limit="abc", offset="-5")["records"]) == 4  # bad numbers → defaults
    assert fetch(offset="10")["records"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2020-13-01"},
        {"to": "yesterday"},
        {"from": "2020-04-01T25:00"},
        {"to": "01/04/2020"},
    ],
)
def test_malformed_dates_are_400(stack: Stack, root_user: User, params: dict[str, str]) -> None:
    with as_root(stack) as client:
        for path in (f"/api/user/{root_user.id}", "/api/all", "/api/entity/product/1"):
            response = client.get(path, params=params)
            assert_error(response, 400)
            assert "inválido" in response.json()["error"]


async def test_limit_is_clamped_to_500(stack: Stack, redis: Redis, db: Database) -> None:
    actor = fake_user()
    events = [
        event_at(
            an_event(EventType.LOGIN_SUCCEEDED, actor, "user", actor.id),
            f"2020-05-01T12:{i // 60:02d}:{i % 60:02d}+00:00",
        )
        for i in range(501)
    ]
    await publish_and_wait(redis, db, events)
    with as_root(stack) as client:
        everything = client.get(f"/api/user/{actor.id}", params={"limit": 100000}).json()
        rest = client.get(f"/api/user/{actor.id}", params={"limit": 500, "offset": 500}).json()
        default = client.get(f"/api/user/{actor.id}").json()
    assert everything["total"] == 501 and len(everything["records"]) == 500
    assert len(default["records"]) == 50
    assert [r["timestamp"] for r in rest["records"]] == ["2020-05-01T09:00:00-03:00"]


async def test_all_lists_every_actor_newest_first(stack: Stack, redis: Redis, db: Database) -> None:
    one, two = fake_user(), fake_user("admin")
    # A random past second, so the window holds only these events even on a reused database.
    base = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(seconds=random.randrange(10**8) * 10)

    def at(seconds: int) -> str:
        return (base + timedelta(seconds=seconds)).isoformat()

    events = [
        event_at(an_event(EventType.LOGIN_SUCCEEDED, one, "user", one.id), at(0)),
        event_at(
            an_event(
                EventType.LOGIN_FAILED,
                None,
                "user",
                None,
                status="error",
                data={"username": one.username, "reason": "invalid_credentials"},
            ),
            at(1),
        ),
        event_at(an_event(EventType.LOGOUT, two, "user", two.id), at(2)),
    ]
    await publish_and_wait(redis, db, events)
    with as_root(stack) as client:
        body = client.get("/api/all", params={"from": at(0), "to": at(2)}).json()
        assert client.get("/api/all", params={"from": at(1), "to": at(1)}).json()["total"] == 1
    assert body["total"] == 3
    assert [(r["user_id"], r["action"], r["status"]) for r in body["records"]] == [
        (two.id, "logout", "success"),
        (None, "login", "error"),
        (one.id, "login", "success"),
    ]
    failed = body["records"][1]
    assert failed["username"] is None and failed["role"] is None
    assert one.username in failed["description"]
    # Anonymous records belong to no user, not even the one whose name was typed.
    with as_root(stack) as client:
        own = client.get(f"/api/user/{one.id}").json()
    assert [r["action"] for r in own["records"]] == ["login"]


# --- entity trail ------------------------------------------------------------------------------


async def test_entity_trail_oldest_first_with_parsed_values(
    stack: Stack, redis: Redis, db: Database, admin: User
) -> None:
    actor = fake_user("admin")
    product = fake_product_id()
    snapshot = {"id": product, "name": "Té", "price": 10.0, "quantity": 3, "min_quantity": 1}
    updated = {**snapshot, "price": 12.0}
    events = [
        event_at(
            an_event(
                EventType.PRODUCT_CREATED,
                actor,
                "product",
                product,
                after=snapshot,
                data={"product": snapshot},
            ),
            "2020-07-01T12:00:00+00:00",
        ),
        event_at(
            an_event(
                EventType.PRODUCT_UPDATED,
                actor,
                "product",
                product,
                before=snapshot,
                after=updated,
                data={"changed": ["price"]},
            ),
            "2020-07-01T12:01:00+00:00",
        ),
        event_at(
            an_event(
                EventType.PRODUCT_PRICES_BULK_UPDATED,
                actor,
                "product",
                None,
                data={
                    "products": [
                        {"id": product - 1, "name": "Otro", "old_price": 1, "new_price": 2},
                        {"id": product, "name": "Té", "old_price": 12.0, "new_price": 15.0},
                    ]
                },
            ),
            "2020-07-01T12:02:00+00:00",
        ),
        event_at(
            an_event(
                EventType.REQUEST_REFUSED,
                actor,
                "product",
                product,
                status="error",
                data={
                    "method": "DELETE",
                    "path": f"/api/products/{product}",
                    "http_status": 403,
                    "service": "products",
                },
            ),
            "2020-07-01T12:03:00+00:00",
        ),
        event_at(
            an_event(
                EventType.PRODUCT_DISABLED,
                actor,
                "product",
                product,
                data={"name": "Té"},
                before={"status": 1},
                after={"status": 0},
            ),
            "2020-07-01T12:04:00+00:00",
        ),
        # Another product: not in this trail.
        an_event(EventType.PRODUCT_UPDATED, actor, "product", product + 1, before={}, after={}),
    ]
    await publish_and_wait(redis, db, events)
    with login(stack, admin) as client:
        body = client.get(f"/api/entity/PRODUCT/{product}").json()
        assert client.get(f"/api/entity/sale/{product}").json()["changes"] == []
        assert client.get(f"/api/entity/nothing/{product}").json()["changes"] == []
        only_updates = client.get(
            f"/api/entity/product/{product}", params={"action": "UPDATE"}
        ).json()
    assert body["entity_type"] == "product" and body["entity_id"] == product
    assert body["total"] == 5
    changes = body["changes"]
    assert [c["action"] for c in changes] == [
        "create",
        "update",
        "update_price_bulk",
        "delete",
        "delete",
    ]
    assert [c["status"] for c in changes] == ["success"] * 3 + ["error", "success"]
    assert changes[0]["old_value"] is None and changes[0]["new_value"] == snapshot
    assert changes[1] == {
        "user_id": actor.id,
        "username": actor.username,
        "action": "update",
        "old_value": snapshot,
        "new_value": updated,
        "timestamp": "2020-07-01T09:01:00-03:00",
        "description": "Cambios: Precio: '10.0' → '12.0'",
        "id": changes[1]["id"],
        "status": "success",
        "role": "admin",
        "ip_address": "198.51.100.7",
        "request_id": events[1].request_id,
        "event_type": "product.updated",
    }
    # The bulk change shows this product's own entry.
    assert changes[2]["old_value"] == {"id": product, "name": "Té", "price": 12.0}
    assert changes[2]["new_value"] == {"id": product, "name": "Té", "price": 15.0}
    assert changes[3]["description"].startswith("Error al ejecutar delete de Producto")
    assert changes[4]["description"] == f"Producto eliminado — Nombre: 'Té' (ID: {product})"
    assert [c["action"] for c in only_updates["changes"]] == ["update"]


# --- delivery ----------------------------------------------------------------------------------


async def test_redelivered_event_is_recorded_once(stack: Stack, redis: Redis, db: Database) -> None:
    actor = fake_user()
    event = an_event(EventType.LOGIN_SUCCEEDED, actor, "user", actor.id)
    await publish(redis, [event, event])
    marker = an_event(EventType.LOGOUT, actor, "user", actor.id)  # published after both
    await publish_and_wait(redis, db, [marker])
    async with db.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM audit.audit_log WHERE event_id = :id"), {"id": event.id}
        )
        processed = await conn.scalar(
            text(
                "SELECT count(*) FROM audit.processed_events WHERE event_id = :id"
                " AND consumer_group = 'audit'"
            ),
            {"id": event.id},
        )
    assert (count, processed) == (1, 1)


# --- the gateway's own events, for real ------------------------------------------------------


def test_login_logout_and_failed_login_through_the_gateway(
    stack: Stack, other_vendedor: User
) -> None:
    tag = unique("audit-gw-")
    with stack.client() as client:
        headers = {"X-Request-ID": f"{tag}-bad", "X-Forwarded-For": "6.6.6.6"}
        bad = client.post(
            "/api/login",
            headers=headers,
            json={"username": other_vendedor.username, "password": "wrong-pw-42"},
        )
        assert bad.status_code == 401
        good = client.post(
            "/api/login",
            headers={"X-Request-ID": f"{tag}-in"},
            json={"username": other_vendedor.username, "password": other_vendedor.password},
        )
        assert good.status_code == 200
        assert client.post("/api/logout", headers={"X-Request-ID": f"{tag}-out"}).status_code == 200

    def by_request(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["request_id"]: r for r in records if (r["request_id"] or "").startswith(tag)}

    deadline = time.monotonic() + 30
    while True:
        with as_root(stack) as client:
            listed = client.get("/api/all", params={"action": "LOGIN", "limit": 500}).json()
            outs = client.get("/api/all", params={"action": "logout", "limit": 500}).json()
        found = by_request(listed["records"] + outs["records"])
        if len(found) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(found) == {f"{tag}-bad", f"{tag}-in", f"{tag}-out"}
    failed, login_ok, logout = found[f"{tag}-bad"], found[f"{tag}-in"], found[f"{tag}-out"]
    assert (failed["status"], failed["user_id"], failed["entity_type"]) == ("error", None, "user")
    assert other_vendedor.username in failed["description"]
    assert "wrong-pw-42" not in str(failed)
    # X-Forwarded-For from an untrusted peer is ignored: the socket address is recorded.
    assert failed["ip_address"] == "127.0.0.1"
    for record, action in ((login_ok, "login"), (logout, "logout")):
        assert (record["user_id"], record["username"], record["action"], record["status"]) == (
            other_vendedor.id,
            other_vendedor.username,
            action,
            "success",
        )
        assert (record["entity_type"], record["entity_id"]) == ("user", other_vendedor.id)
        assert record["ip_address"] == "127.0.0.1"
    # The user sees their own login and logout, never the anonymous failure.
    with login(stack, other_vendedor) as client:
        own = client.get(f"/api/user/{other_vendedor.id}", params={"limit": 500}).json()
    ids = {r["request_id"] for r in own["records"]}
    assert f"{tag}-in" in ids and f"{tag}-out" in ids and f"{tag}-bad" not in ids
