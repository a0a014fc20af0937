"""The audit endpoints answer what their OpenAPI declarations say (records with and without an
actor, entity trails with bulk entries), and odd filters or paths are a 400 JSON error or a
fallback, never a 500."""

from __future__ import annotations

import random

import httpx
import pytest
from redis.asyncio import Redis

from services.audit.api import router
from stockmanager.db import Database
from stockmanager.events import EventType
from stockmanager.identity import IDENTITY_HEADER, sign_identity
from tests.audit.documented import assert_documented
from tests.audit.support import (
    User,
    an_event,
    as_root,
    event_at,
    fake_user,
    publish,
    wait_for_records,
)
from tests.support.stack import Stack

USER = "/api/user/{user_id}"
ALL = "/api/all"
ENTITY = "/api/entity/{entity_type}/{entity_id}"
BIG = 99999999999999999999999
INVALID = "Parámetros inválidos"


async def test_answers_match_their_declarations(stack: Stack, redis: Redis, db: Database) -> None:
    actor = fake_user("admin")
    product = 9_100_000_000 + random.randrange(10**9)
    events = [
        event_at(
            an_event(
                EventType.PRODUCT_UPDATED,
                actor,
                "product",
                product,
                before={"id": product, "name": "A", "price": 1},
                after={"id": product, "name": "B", "price": 2},
            ),
            "2021-05-01T12:00:00+00:00",
        ),
        event_at(
            an_event(
                EventType.PRODUCT_PRICES_BULK_UPDATED,
                actor,
                "product",
                None,
                data={"products": [{"id": product, "name": "B", "old_price": 2, "new_price": 3}]},
            ),
            "2021-05-01T12:01:00.250000+00:00",
        ),
        event_at(
            an_event(
                EventType.LOGIN_FAILED,
                None,
                "user",
                None,
                status="error",
                data={"username": actor.username, "reason": "invalid_credentials"},
            ),
            "2021-05-01T12:02:00+00:00",
        ),
    ]
    await publish(redis, events)
    await wait_for_records(db, [event.id for event in events])
    with as_root(stack) as client:
        mine = client.get(f"/api/user/{actor.id}")
        assert assert_documented(router, "GET", USER, mine)["total"] == 2
        window: dict[str, str | int] = {
            "from": "2021-05-01T12:00:00Z",
            "to": "2021-05-01T12:02:00Z",
            "limit": 500,
        }
        every = assert_documented(router, "GET", ALL, client.get("/api/all", params=window))
        anonymous = [r for r in every["records"] if r["user_id"] is None]
        assert anonymous and anonymous[0]["username"] is None
        trail = client.get(f"/api/entity/Product/{product}")
        body = assert_documented(router, "GET", ENTITY, trail)
        assert [change["action"] for change in body["changes"]] == ["update", "update_price_bulk"]
        bad = client.get("/api/all", params={"from": "yesterday"})
        assert bad.status_code == 400
        assert_documented(router, "GET", ALL, bad)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/all?action=%00", 400),
        ("/api/all?action=%FF", 200),
        ("/api/all?action=" + "x" * 3000, 200),
        ("/api/all?limit=%00", 400),
        ("/api/all?from=%00", 400),
        ("/api/all?to=a%00", 400),
        ("/api/all?x%00=1", 400),
        ("/api/all?from=9999-12-31", 200),
        ("/api/all?to=9999-12-31", 400),
        ("/api/all?to=0001-01-01T00:00:00%2B14:00", 400),
        ("/api/all?from=9999-12-31T23:00:00-12:00", 400),
        ("/api/all?from=0001-01-01&to=0001-01-02", 200),
        ("/api/all?from=%FF%FE", 400),
        (f"/api/all?limit={BIG}&offset={BIG}", 200),
        ("/api/all?limit=%C2%B2&offset=-1", 200),
        ("/api/entity/%00/1", 400),
        ("/api/entity/%FF/1", 200),
        ("/api/entity/%20/1", 200),
        ("/api/entity/" + "x" * 300 + "/1", 200),
        ("/api/entity/product/1?action=%00", 400),
        ("/api/user/1?from=%00", 400),
    ],
)
def test_odd_parameters_are_400_or_fall_back(stack: Stack, path: str, status: int) -> None:
    with as_root(stack) as client:
        response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    template = ALL if path.startswith("/api/all") else USER if "/user/" in path else ENTITY
    assert_documented(router, "GET", template, response)


def test_ids_beyond_bigint_are_400_not_500(stack: Stack, root_user: User) -> None:
    # The gateway refuses ids longer than 18 digits itself (404); the service is safe anyway.
    with as_root(stack) as client:
        assert client.get(f"/api/user/{BIG}").status_code == 404
    secret = stack.env["STOCKMANAGER_INTERNAL_SECRET"]
    headers = {IDENTITY_HEADER: sign_identity(root_user.identity(), secret)}
    with httpx.Client(base_url=stack.service_urls["audit"][0], timeout=10) as client:
        for huge in (BIG, 2**63, -(2**63)):
            history = client.get(f"/api/user/{huge}", headers=headers)
            assert history.status_code == 400, history.text
            assert assert_documented(router, "GET", USER, history)["error"] == INVALID
            trail = client.get(f"/api/entity/Sale/{huge}", headers=headers)
            assert trail.status_code == 400, trail.text
            assert assert_documented(router, "GET", ENTITY, trail)["error"] == INVALID
        for fine in (2**63 - 1, -(2**63) + 1):
            history = client.get(f"/api/user/{fine}", headers=headers)
            assert assert_documented(router, "GET", USER, history) == {"total": 0, "records": []}
            trail = client.get(f"/api/entity/Sale/{fine}", headers=headers)
            assert assert_documented(router, "GET", ENTITY, trail)["total"] == 0
        not_a_number = client.get("/api/user/1e3", headers=headers)
        assert not_a_number.status_code == 400
        assert_documented(router, "GET", USER, not_a_number)
