"""Helpers of the audit tests: users, events on the stream, waiting for audit records."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text

from stockmanager.db import Database
from stockmanager.events import Event, new_event
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity
from tests.support.factories import create_user_row
from tests.support.stack import ApiClient, Stack, unique

STREAM = "stockmanager:events"
PASSWORD = "audit-test-pw-1"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password: str = PASSWORD

    def identity(self, ip: str = "198.51.100.7", request_id: str | None = None) -> Identity:
        return Identity(
            user_id=self.id,
            username=self.username,
            role=self.role,
            request_id=request_id or unique("req-"),
            ip=ip,
            issued_at=time.time(),
        )


def fake_user(role: str = "vendedor") -> User:
    """An actor id no real user has: its history holds exactly the events a test publishes."""
    return User(8_000_000_000 + random.randrange(10**9), unique("ghost"), role)


_ROOT_CLIENTS: dict[str, ApiClient] = {}


@contextmanager
def as_root(stack: Stack) -> Iterator[ApiClient]:
    """A logged-in root client, reused across tests (a login costs an Argon2 verification)."""
    client = _ROOT_CLIENTS.get(stack.base_url)
    if client is None or client.get("/api/session").status_code != 200:
        client = stack.root()
        _ROOT_CLIENTS[stack.base_url] = client
    yield client


def api_available(stack: Stack, path: str) -> bool:
    """True once the endpoint exists: it answers 400 to an empty body (404/502/503 before)."""
    with as_root(stack) as root:
        return root.post(path, json={}).status_code == 400


def sales_api_available(stack: Stack) -> bool:
    return api_available(stack, "/api/sales/bulk") and api_available(stack, "/api/products")


def users_api_available(stack: Stack) -> bool:
    """True once the users service serves POST /api/users (it answers 400 to an empty body)."""
    with as_root(stack) as root:
        return root.post("/api/users", json={}).status_code == 400


def create_user(stack: Stack, database_url: str, role: str, prefix: str = "aud") -> User:
    """Through the API when the users service has it; straight into users.users until then."""
    username = unique(prefix)
    if users_api_available(stack):
        with as_root(stack) as root:
            response = root.post(
                "/api/users",
                json={
                    "username": username,
                    "email": f"{username}@example.test",
                    "password": PASSWORD,
                    "role": role,
                },
            )
            assert response.status_code == 201, response.text
            listed = root.get("/api/users", params={"search": username}).json()["data"]
        user_id = next(u["id"] for u in listed if u["username"] == username)
        return User(int(user_id), username, role)
    return User(create_user_row(database_url, username, PASSWORD, role), username, role)


def login(stack: Stack, user: User) -> ApiClient:
    return stack.login(user.username, user.password)


def event_at(event: Event, occurred_at: str) -> Event:
    return dataclasses.replace(event, occurred_at=occurred_at)


def an_event(
    event_type: str, actor: User | None, entity_type: str, entity_id: int | None, **fields: Any
) -> Event:
    return new_event(
        event_type,
        identity=actor.identity() if actor else None,
        entity_type=entity_type,
        entity_id=entity_id,
        **fields,
    )


async def publish(redis: Redis, events: Iterable[Event], stream: str = STREAM) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(stream, {"event": event.to_json(), "type": event.type})
        await pipe.execute()


async def audit_rows(db: Database, event_ids: Iterable[str]) -> dict[str, Any]:
    ids = list(event_ids)
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT * FROM audit.audit_log WHERE event_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": ids},
            )
        ).all()
    return {str(row.event_id): row for row in rows}


async def wait_for_records(
    db: Database, event_ids: Iterable[str], within: float = 30.0
) -> dict[str, Any]:
    """Poll until every event id has its audit record (or fail with what is missing)."""
    wanted = set(event_ids)
    deadline = time.monotonic() + within
    while True:
        found = await audit_rows(db, wanted)
        if set(found) == wanted:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(wanted - set(found))} of {len(wanted)} events not audited")
        await asyncio.sleep(0.1)


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("code"), str)
    if message is not None:
        assert body["error"] == message


def create_product(stack: Stack, stock: int, price: float = 10.5) -> int:
    """A product through the API (min_quantity 0: no low-stock noise); returns its id."""
    barcode = unique("77")[:20]
    with as_root(stack) as root:
        response = root.post(
            "/api/products",
            json={
                "barcode": barcode,
                "name": unique("P")[:25],
                "quantity": stock,
                "min_quantity": 0,
                "price": price,
            },
        )
        assert response.status_code == 201, response.text
        listed = root.get("/api/products_all", params={"search": barcode}).json()["data"]
    return int(next(p["id"] for p in listed if p["barcode"] == barcode))


def direct_sale(
    client: httpx.Client,
    stack: Stack,
    seller: User,
    product: int,
    request_id: str,
    ip: str = "203.0.113.9",
) -> httpx.Response:
    """POST /api/sales/bulk straight to the sales service with a signed gateway identity."""
    identity = Identity(
        user_id=seller.id,
        username=seller.username,
        role=seller.role,
        request_id=request_id,
        ip=ip,
        issued_at=time.time(),
    )
    secret = stack.env["STOCKMANAGER_INTERNAL_SECRET"]
    return client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": product, "quantity": 1}]},
        headers={IDENTITY_HEADER: sign_identity(identity, secret)},
    )


def tagged_records(stack: Stack, tag: str, since: str, count: int) -> list[dict[str, Any]]:
    """The records of requests sent with `X-Request-ID: <tag>-…`, oldest first, once `count`
    of them are there (the consumer is asynchronous)."""

    def fetch() -> list[dict[str, Any]] | None:
        with as_root(stack) as root:
            response = root.get("/api/all", params={"from": since, "limit": 500})
        assert response.status_code == 200, response.text
        mine = [r for r in response.json()["records"] if (r["request_id"] or "").startswith(tag)]
        return mine if len(mine) >= count else None

    return list(reversed(wait_until(fetch, timeout=30, interval=0.2)))
