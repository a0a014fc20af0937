"""Live streams (SSE) cannot exhaust the gateway or the notifications service (issue 14).

- One user opens at most `STOCKMANAGER_SSE_MAX_STREAMS_PER_USER` (10) streams; one more is a
  JSON 429 with Retry-After, and a closed stream frees its place.
- A gateway process and a notifications process each serve at most `STOCKMANAGER_SSE_MAX_STREAMS`
  streams (tested with 2, on processes of their own).
- A stream whose session ends (logout, user disabled, password changed) ends within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stockmanager.embedded import free_port
from stockmanager.supervisor import Supervisor
from tests.support.factories import create_user_row
from tests.support.stack import Stack, gateway_spec, service_spec, unique

PASSWORD = "sse-limits-pass"
STREAM = "/api/notifications/stream"
# Generous: the gateway checks a stream's session every 5 s by default.
ENDS_WITHIN = 30.0


def _user(stack: Stack, database_url: str) -> tuple[int, str, str]:
    """A new user: id, name and a session cookie (logged in on the shared stack's gateway)."""
    username = unique("sse")
    user_id = create_user_row(database_url, username, PASSWORD)
    return user_id, username, _login(stack, username)


def _login(stack: Stack, username: str) -> str:
    with stack.login(username, PASSWORD) as client:
        return str(client.cookies["session"])


@dataclass
class Opened:
    response: httpx.Response
    chunks: AsyncIterator[bytes]  # the rest of the stream (kept: dropping it closes the stream)

    @property
    def status_code(self) -> int:
        return self.response.status_code


@contextlib.asynccontextmanager
async def _stream(base_url: str, cookie: str) -> AsyncIterator[Opened]:
    """An SSE request, once its headers (and, if 200, the first event) arrived."""
    timeout = httpx.Timeout(10.0, read=ENDS_WITHIN + 10)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", STREAM, headers={"Cookie": f"session={cookie}"}) as response,
    ):
        chunks = response.aiter_raw()
        if response.status_code == 200:
            first = await anext(chunks)
            assert first.startswith(b"event: init"), first
        else:
            await response.aread()
        yield Opened(response, chunks)


def _assert_too_many(opened: Opened) -> None:
    response = opened.response
    assert response.status_code == 429, response.status_code
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == "rate_limited"
    assert "conexiones" in response.json()["error"]
    assert int(response.headers["retry-after"]) > 0


async def _ends(opened: Opened) -> None:
    """Read the stream to its end; fails if it is still open after ENDS_WITHIN seconds."""
    try:
        async with asyncio.timeout(ENDS_WITHIN):
            async for _chunk in opened.chunks:
                pass
    except TimeoutError:
        pytest.fail(f"the stream was still open {ENDS_WITHIN} s after its session ended")


# --------------------------------------------------------------------------------- per user


async def test_one_user_opens_at_most_ten_streams(stack: Stack, migrated: str) -> None:
    _, username, cookie = _user(stack, migrated)
    async with contextlib.AsyncExitStack() as open_streams:
        streams = [
            await open_streams.enter_async_context(_stream(stack.base_url, cookie))
            for _ in range(10)
        ]
        assert [s.status_code for s in streams] == [200] * 10
        async with _stream(stack.base_url, cookie) as refused:
            _assert_too_many(refused)
        # A second session of the same user counts against the same user.
        async with _stream(stack.base_url, _login(stack, username)) as refused:
            _assert_too_many(refused)
        # Another user is not affected.
        other = _user(stack, migrated)[2]
        async with _stream(stack.base_url, other) as allowed:
            assert allowed.status_code == 200
    # All ten closed: their places are free again (released as each connection closed).
    for attempt in range(100):
        async with _stream(stack.base_url, cookie) as reopened:
            if reopened.status_code == 200:
                break
            assert reopened.status_code == 429 and attempt < 99
        await asyncio.sleep(0.1)


# ----------------------------------------------------------------------- per process (own)


@dataclass
class Limited:
    capped_gateway: str  # the shared services; this gateway admits 2 streams in all
    capped_service: str  # a gateway whose notifications process serves 2 streams in all


@pytest.fixture(scope="module")
def limited(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    notifications_port, capped_port, service_port = free_port(), free_port(), free_port()
    notifications = service_spec(
        "notifications",
        notifications_port,
        {**stack.env, "STOCKMANAGER_SSE_MAX_STREAMS": "2"},
        "notifications-capped",
    )
    capped = gateway_spec(
        "gateway-capped", capped_port, {**stack.env, "STOCKMANAGER_SSE_MAX_STREAMS": "2"}
    )
    behind_capped_service = gateway_spec(
        "gateway-capped-service",
        service_port,
        {
            **stack.env,
            "STOCKMANAGER_NOTIFICATIONS_URLS": f"http://127.0.0.1:{notifications_port}",
        },
    )
    log = Path(tmp_path_factory.mktemp("sse-limits")) / "processes.log"
    with log.open("w") as out:
        supervisor = Supervisor([notifications, capped, behind_capped_service], out=out)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=90)
            yield Limited(f"http://127.0.0.1:{capped_port}", f"http://127.0.0.1:{service_port}")
        finally:
            supervisor.stop()


@pytest.mark.parametrize("where", ["capped_gateway", "capped_service"])
async def test_a_process_serves_a_bounded_number_of_streams(
    stack: Stack, migrated: str, limited: Limited, where: str
) -> None:
    """Different users (so the per-user limit never applies): the third stream is refused."""
    base_url = getattr(limited, where)
    cookies = [_user(stack, migrated)[2] for _ in range(3)]
    async with contextlib.AsyncExitStack() as open_streams:
        for cookie in cookies[:2]:
            opened = await open_streams.enter_async_context(_stream(base_url, cookie))
            assert opened.status_code == 200, opened.text
        async with _stream(base_url, cookies[2]) as refused:
            _assert_too_many(refused)


# --------------------------------------------------------------------------- revoked sessions


@pytest.mark.parametrize("how", ["logout", "disabled", "password_changed"])
async def test_a_stream_ends_when_its_session_ends(stack: Stack, migrated: str, how: str) -> None:
    user_id, _, cookie = _user(stack, migrated)
    headers = {"Cookie": f"session={cookie}"}
    async with _stream(stack.base_url, cookie) as response:
        assert response.status_code == 200
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
            if how == "logout":
                ended = await client.post("/api/logout", headers=headers)
            elif how == "disabled":
                with stack.root() as root:
                    ended = root.delete(f"/api/users/{user_id}")
            else:
                ended = await client.put(
                    "/api/settings/password",
                    headers=headers,
                    json={
                        "current_password": PASSWORD,
                        "new_password": "another-sse-pass",
                        "confirm_password": "another-sse-pass",
                    },
                )
            assert ended.status_code == 200, ended.text
        await _ends(response)
    # And the session is indeed gone (the stream did not end for another reason).
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        for _ in range(100):
            if (await client.get("/api/session", headers=headers)).status_code == 401:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the session was not revoked")
