"""Helpers for the notifications tests (and the notifications benchmark): test users, event
injection, polling and a small Server-Sent Events client over aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson
from redis.asyncio import Redis
from sqlalchemy import text

from stockmanager.db import Database
from stockmanager.events import Event, new_event
from stockmanager.identity import Identity
from tests.support.stack import Stack, unique

PASSWORD = "notif-test-pass"
EVENT_STREAM = "stockmanager:events"

T = TypeVar("T")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password: str = PASSWORD


_root_cookies: dict[str, str] = {}


async def _as_root(
    stack: Stack, method: str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        for _attempt in range(2):
            cookie = _root_cookies.get(stack.base_url)
            if cookie is None:
                cookie = await login_cookie(stack.base_url, "root", stack.root_password)
                _root_cookies[stack.base_url] = cookie
            response = await client.request(
                method, path, json=body, headers={"Cookie": f"session={cookie}"}
            )
            if response.status_code != 401:
                return response
            _root_cookies.pop(stack.base_url, None)  # session expired or revoked: log in again
    raise AssertionError(f"root could not {method} {path}: {response.text}")


async def create_user(
    stack: Stack,
    *,
    role: str = "vendedor",
    status: int = 1,
    application: str = "accepted",
    prefix: str = "nt",
) -> User:
    """A user created through the public API (as root, or self-registered when pending)."""
    username = unique(prefix)
    body = {"username": username, "email": f"{username}@example.test", "password": PASSWORD}
    if application == "pending":
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
            registered = await client.post("/api/register", json=body)
        assert registered.status_code == 201, registered.text
        found = await _as_root(stack, "GET", f"/api/users?search={username}")
        [user_id] = [u["id"] for u in found.json()["data"] if u["username"] == username]
        if role != "vendedor":  # a pending application an admin already edited
            promoted = await _as_root(
                stack, "PUT", f"/api/users/{user_id}", {"role": role, "status": 1}
            )
            assert promoted.status_code == 200, promoted.text
    else:
        created = await _as_root(stack, "POST", "/api/users", {**body, "role": role})
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
    if status == 0:
        disabled = await _as_root(stack, "DELETE", f"/api/users/{user_id}")
        assert disabled.status_code == 200, disabled.text
    return User(int(user_id), username, role)


@dataclass
class Actor:
    """A logged-in test user: the account and its gateway session cookie."""

    user: User
    cookie: str


async def new_actor(stack: Stack, role: str = "vendedor") -> Actor:
    user = await create_user(stack, role=role)
    return Actor(user, await login_cookie(stack.base_url, user.username))


async def login_cookie(base_url: str, username: str, password: str = PASSWORD) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base_url + "/api/login", json={"username": username, "password": password}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        cookie = response.cookies.get("session")
        assert cookie is not None
        return cookie.value


def event_for(
    event_type: str,
    *,
    actor: User | None,
    entity_type: str,
    entity_id: int | None,
    data: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Event:
    identity = (
        Identity(actor.id, actor.username, actor.role, unique("rid"), "127.0.0.1", time.time())
        if actor
        else None
    )
    return new_event(
        event_type,
        identity=identity,
        entity_type=entity_type,
        entity_id=entity_id,
        data=data,
        before=before,
        after=after,
    )


async def inject(redis: Redis, event: Event) -> str:
    """Publish an event the way a service's relay does (field `event` = the envelope JSON)."""
    message_id = await redis.xadd(EVENT_STREAM, {"event": event.to_json()})
    return message_id.decode() if isinstance(message_id, bytes) else str(message_id)


def _stream_id(value: str) -> tuple[int, int]:
    millis, _, seq = value.partition("-")
    return int(millis), int(seq or 0)


async def consumed(redis: Redis, message_id: str, group: str = "notifications") -> None:
    """Wait until the consumer group has read and acknowledged everything up to `message_id`
    (acknowledged = its transaction committed): a barrier for "nothing more will happen"."""

    async def probe() -> bool:
        for info in await redis.xinfo_groups(EVENT_STREAM):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name != group:
                continue
            last = info["last-delivered-id"]
            last = last.decode() if isinstance(last, bytes) else str(last)
            return _stream_id(last) >= _stream_id(message_id) and info["pending"] == 0
        return False

    await eventually(probe, within=10.0)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 5.0, interval: float = 0.05
) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s (last value: {last!r})")


async def notifications_of(db: Database, user_id: int) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, title, message, type, action_url, is_read FROM "
                "notifications.notifications WHERE user_id = :u ORDER BY id"
            ),
            {"u": user_id},
        )
        return [dict(row._mapping) for row in rows]


async def stream_message(
    redis: Redis, event_type: str, predicate: Callable[[dict[str, Any]], bool], count: int = 2000
) -> tuple[str, dict[str, Any]] | None:
    """The newest event of this type on the stream matching `predicate`: (message id, event)."""
    for message_id, fields in await redis.xrevrange(EVENT_STREAM, count=count):
        payload = orjson.loads(fields[b"event"])
        if payload["type"] == event_type and predicate(payload):
            return message_id.decode(), payload
    return None


async def find_stream_event(
    redis: Redis, event_type: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    found = await stream_message(redis, event_type, predicate)
    return found[1] if found else None


# --- Server-Sent Events client --------------------------------------------------------------


@dataclass
class SseMessage:
    event: str | None  # None for a comment line (e.g. heartbeat)
    data: Any
    comment: str | None
    received_at: float


@dataclass
class SseStream:
    """One open `text/event-stream` response, parsed frame by frame."""

    response: aiohttp.ClientResponse
    buffer: bytes = b""
    messages: asyncio.Queue[SseMessage | None] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    @property
    def headers(self) -> Any:
        return self.response.headers

    def start(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for chunk in self.response.content.iter_any():
                now = time.perf_counter()
                self.buffer += chunk
                while b"\n\n" in self.buffer:
                    raw, self.buffer = self.buffer.split(b"\n\n", 1)
                    self.messages.put_nowait(parse_frame(raw, now))
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            self.messages.put_nowait(None)  # end of stream

    async def next(self, within: float = 5.0) -> SseMessage | None:
        return await asyncio.wait_for(self.messages.get(), within)

    async def next_event(self, name: str, within: float = 5.0) -> SseMessage:
        """The next message with this event name (comments are skipped)."""
        deadline = time.monotonic() + within
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if message is None:
                raise AssertionError("stream ended")
            if message.event == name:
                return message

    async def close(self) -> None:
        self.response.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


def parse_frame(raw: bytes, received_at: float) -> SseMessage:
    event: str | None = None
    data_lines: list[bytes] = []
    comment: str | None = None
    for line in raw.split(b"\n"):
        if line.startswith(b":"):
            comment = line[1:].strip().decode()
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
        elif line.startswith(b"data:"):
            data_lines.append(line[5:].strip())
    data = orjson.loads(b"\n".join(data_lines)) if data_lines else None
    return SseMessage(event, data, comment, received_at)


async def open_stream(
    session: aiohttp.ClientSession,
    base_url: str,
    cookie: str,
    path: str = "/api/notifications/stream",
) -> SseStream:
    response = await session.get(
        base_url + path,
        headers={"Cookie": f"session={cookie}"},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None),
    )
    stream = SseStream(response)
    if response.status == 200:
        stream.start()
    return stream


def sse_session(limit: int = 0) -> aiohttp.ClientSession:
    """A client session for many concurrent streams (no pool cap, no cookie jar sharing)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=True),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def service_stack_url(stack: Stack, name: str) -> str:
    return stack.service_urls[name][0]
