"""Unauthenticated exhaustion of Redis and of the login limiter (issue 14).

An attacker without an account could grow Redis without bound (a 1,000,000-character login name
copied into every `auth.login_failed` event; long paths into `request.refused` events; long
client log lines), and 60 wrong passwords sent at once all reached the password check (the
failure counter was read before and written after it). Every test here attacks through the
gateway of a stack with its own database and Redis, so the counters it fills and the memory it
squeezes are nobody else's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from gateway.events import EVENTS_DROPPED, EventPublisher
from gateway.ratelimit import _key as limiter_key
from gateway.schemas import LOGIN_NAME_MAX, LOGIN_PASSWORD_MAX
from services.users import validation as users_validation
from stockmanager.contracts.fields import CLIP_MAX_CHARS, clip_text
from stockmanager.events import EventType, new_event
from stockmanager.logs import LINE_MAX_CHARS, clip_line
from tests.support.factories import create_user_row
from tests.support.isolated import isolated_backends
from tests.support.stack import Stack, extra_gateway, start_stack, unique
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

EVENTS = "stockmanager:events"
LOGS = "stockmanager:logs"
MAX_FAILURES = 5  # the gateway's default `login_max_failures`
EVENT_MAX_BYTES = 2048  # the gateway's default `event_max_bytes`
REQUIRED = "Usuario y contraseña requeridos"


# ---------------------------------------------------------------------------- isolated stack


class Isolated:
    """A stack with its own database and Redis, plus a second gateway replica on both."""

    def __init__(self, stack: Stack, redis_url: str, second_gateway: str) -> None:
        self.stack = stack
        self.database_url = stack.env["DATABASE_URL"]
        self.redis = redis_sync.Redis.from_url(redis_url, socket_timeout=30)
        self.gateways = [stack.base_url, second_gateway]

    def user(self, password: str = "correct-horse-1") -> tuple[str, str]:
        username = unique("sec")
        create_user_row(self.database_url, username, password)
        return username, password

    def events_after(self, last_id: bytes | str, event_type: str) -> list[dict[str, Any]]:
        found = []
        for _, fields in self.redis.xrange(EVENTS, min=f"({_id(last_id)}"):
            if fields[b"type"].decode() == event_type:
                found.append(orjson.loads(fields[b"event"]))
        return found

    def last_event_id(self) -> str:
        newest = self.redis.xrevrange(EVENTS, count=1)
        return _id(newest[0][0]) if newest else "0-0"


def _id(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture(scope="module")
def isolated(migrated: str, data_root: Path) -> Iterator[Isolated]:
    log_dir = data_root / "security-login"
    log_dir.mkdir(exist_ok=True)
    # The per-address limit stays out of the way: these tests count per-account failures.
    env = {
        "STOCKMANAGER_LOGIN_IP_MAX_FAILURES": "1000",
    }
    with (
        isolated_backends(migrated, data_root, "security_login") as (database_url, redis_url),
        start_stack(
            database_url=database_url, redis_url=redis_url, log_dir=log_dir, extra_env=env
        ) as stack,
        extra_gateway(stack.env, log_dir / "gateway-2.log", "gateway-2") as second,
    ):
        yield Isolated(stack, redis_url, second)


def _login(base_url: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        return client.post("/api/login", json={"username": username, "password": password})


# ---------------------------------------------------------------------- bounded login input


def test_login_limits_match_the_users_service() -> None:
    """A login name is a username or an e-mail; nothing longer than either can be an account."""
    longest = max(users_validation.USERNAME_MAX, users_validation.EMAIL_MAX)
    assert longest == LOGIN_NAME_MAX
    assert LOGIN_PASSWORD_MAX == users_validation.PASSWORD_MAX


def test_huge_login_names_are_refused_before_any_work(isolated: Isolated) -> None:
    """The issue's attack: 20 anonymous logins with a 1,000,000-character name. Each is a 400
    naming the limit; Redis holds no counter and no event for them and does not grow."""
    name = "x" * 1_000_000
    before = isolated.last_event_id()
    memory_before = int(isolated.redis.info("memory")["used_memory"])
    for _ in range(20):
        response = _login(isolated.gateways[0], name, "whatever-password")
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": "Usuario: Máximo 100 caracteres (tiene 1000000)",
            "code": "validation_error",
        }
    assert not isolated.redis.exists(limiter_key("user", name, "127.0.0.1"))

    # A wrong password afterwards: its event is the marker that everything before is published.
    username, _ = isolated.user()
    assert _login(isolated.gateways[0], username, "wrong-password").status_code == 401
    eventually(
        lambda: any(
            e["data"]["username"] == username
            for e in isolated.events_after(before, EventType.LOGIN_FAILED)
        ),
        timeout=30,
        what="the marker's auth.login_failed event",
    )
    failed = isolated.events_after(before, EventType.LOGIN_FAILED)
    assert [e["data"]["username"] for e in failed] == [username]
    assert int(isolated.redis.info("memory")["used_memory"]) - memory_before < 1_000_000


def test_login_name_and_password_bounds(isolated: Isolated) -> None:
    """The longest possible e-mail (100 characters, padded with spaces) still logs in; one more
    character, or a password longer than 128, is a 400 that touches no failure counter; a
    missing field keeps its message."""
    local = "a" * (100 - len("@example.test"))
    email = f"{local}@example.test"
    assert len(email) == users_validation.EMAIL_MAX
    username = unique("sec")
    create_user_row(isolated.database_url, username, "correct-horse-1", email=email)
    assert _login(isolated.gateways[0], f"  {email} ", "correct-horse-1").status_code == 200

    too_long = _login(isolated.gateways[0], "b" + email, "correct-horse-1")
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "Usuario: Máximo 100 caracteres (tiene 101)"

    long_password = _login(isolated.gateways[0], username, "p" * 129)
    assert long_password.status_code == 400
    assert long_password.json()["error"] == "Contraseña: Máximo 128 caracteres (tiene 129)"
    assert not isolated.redis.exists(limiter_key("user", username.lower(), "127.0.0.1"))

    for body in ({"username": "", "password": "x"}, {"username": username}, {}):
        with httpx.Client(base_url=isolated.gateways[0]) as client:
            response = client.post("/api/login", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == REQUIRED


# ------------------------------------------------------------------ atomic login throttling


def _parallel_wrong_passwords(isolated: Isolated, count: int) -> list[int]:
    username, _ = isolated.user()

    def attempt(i: int) -> int:
        gateway = isolated.gateways[i % len(isolated.gateways)]
        return _login(gateway, username, f"wrong-{i}").status_code

    # Every attempt is in flight before the first can fail: a read-then-write limiter lets
    # them all through.
    with ThreadPoolExecutor(max_workers=count) as pool:
        statuses = list(pool.map(attempt, range(count)))
    assert _login(isolated.gateways[0], username, "correct-horse-1").status_code == 429
    return statuses


def test_parallel_wrong_passwords_get_at_most_the_limit_of_401s(isolated: Isolated) -> None:
    isolated.gateways, gateways = isolated.gateways[:1], isolated.gateways
    try:
        statuses = _parallel_wrong_passwords(isolated, 60)
    finally:
        isolated.gateways = gateways
    assert sorted(statuses) == [401] * MAX_FAILURES + [429] * (60 - MAX_FAILURES)


def test_parallel_wrong_passwords_across_two_gateway_replicas(isolated: Isolated) -> None:
    statuses = _parallel_wrong_passwords(isolated, 60)
    assert sorted(statuses) == [401] * MAX_FAILURES + [429] * (60 - MAX_FAILURES)


def test_a_successful_login_gives_its_slot_back(isolated: Isolated) -> None:
    """Reserving a slot before the check must not count right passwords: a user who logs in
    correctly 10 times in a row, then mistypes, still gets the full budget of wrong tries."""
    username, password = isolated.user()
    for _ in range(10):
        assert _login(isolated.gateways[0], username, password).status_code == 200
    statuses = [
        _login(isolated.gateways[0], username, "wrong").status_code for _ in range(MAX_FAILURES)
    ]
    assert statuses == [401] * MAX_FAILURES
    assert _login(isolated.gateways[1], username, "wrong").status_code == 429


# ------------------------------------------------------------------ events and logs are small


def test_refused_request_events_have_a_bounded_size(isolated: Isolated) -> None:
    """An anonymous write to a 10,000-character path with a huge X-Request-ID: the
    `request.refused` event clips the path and keeps no foreign request id."""
    before = isolated.last_event_id()
    key = "k" + "\x01é" * 5000
    with httpx.Client(base_url=isolated.gateways[0]) as client:
        response = client.put(
            "/api/settings/actual/" + quote(key),
            json={"value": 1},
            headers={"x-request-id": "r" * 100_000},
        )
    assert response.status_code == 401
    path = "/api/settings/actual/" + key

    def refused() -> list[dict[str, Any]]:
        return [
            e
            for e in isolated.events_after(before, EventType.REQUEST_REFUSED)
            if e["data"]["path"].startswith("/api/settings/actual/k")
        ]

    eventually(lambda: bool(refused()), timeout=30, what="the request.refused event")
    (event,) = refused()
    assert event["data"]["path"] == clip_text(path)
    assert len(event["data"]["path"]) == CLIP_MAX_CHARS
    assert len(event["request_id"]) <= 128
    assert len(orjson.dumps(event)) <= EVENT_MAX_BYTES


def test_client_log_lines_have_a_bounded_size(isolated: Isolated) -> None:
    """Root's client log with a huge message, context and timestamp becomes one central log
    line of at most LINE_MAX_CHARS, still valid JSON, with the message's start kept."""
    marker = unique("log")
    root = isolated.stack.root()
    response = root.post(
        "/api/debug/log",
        json={
            "message": marker + "m" * 200_000,
            "context": {"blob": "c" * 200_000},
            "timestamp": "t" * 200_000,
            "level": "error",
        },
    )
    assert response.status_code == 200

    def line() -> str | None:
        for text in root.get("/api/debug/logs").json()["logs"]:
            if marker in text:
                return str(text)
        return None

    eventually(lambda: line() is not None, timeout=30, what="the client's log line")
    text = line()
    assert text is not None
    assert len(text.rstrip("\n")) <= LINE_MAX_CHARS
    entry = orjson.loads(text)
    assert entry["msg"].startswith("[JS CLIENT] " + marker)
    assert all(len(str(v)) <= LINE_MAX_CHARS for v in entry.values())


def test_clip_helpers() -> None:
    assert clip_text("abc") == "abc"
    clipped = clip_text("a" * 1000)
    assert len(clipped) == CLIP_MAX_CHARS and clipped.endswith("…")
    assert clip_text("abcdef", 4) == "abc…"
    short = orjson.dumps({"msg": "hi"}).decode()
    assert clip_line(short) == short
    long = orjson.dumps({"msg": "x" * 50_000, "exc": "y" * 50_000, "n": 1}).decode()
    entry = orjson.loads(clip_line(long))
    assert entry["clipped"] is True and entry["n"] == 1
    assert len(clip_line(long)) <= LINE_MAX_CHARS
    many = orjson.dumps({f"k{i}": "z" * 3000 for i in range(20)} | {"msg": "m"}).decode()
    assert len(clip_line(many)) <= LINE_MAX_CHARS
    assert orjson.loads(clip_line(many))["msg"] == "m"


async def test_publish_queue_is_bounded_by_count_and_bytes(redis: Redis) -> None:
    """With Redis unreachable or slow the gateway's queue holds at most its byte budget; the
    rest is dropped and counted, never waited for; what was queued is sent once Redis answers."""
    stream = unique("sm:test-events:")
    publisher = EventPublisher(
        redis, stream, 1000, queue_size=1000, queue_max_bytes=8192, event_max_bytes=2048
    )

    def event(size: int) -> Any:
        return new_event(
            EventType.LOGIN_FAILED,
            identity=None,
            entity_type="user",
            entity_id=None,
            data={"username": "u" * size, "reason": None},
        )

    def dropped(reason: str) -> float:
        return EVENTS_DROPPED.labels(reason)._value.get()  # type: ignore[attr-defined,no-any-return]

    full, large = dropped("queue_full"), dropped("too_large")
    publisher.publish(event(5000))  # one event over event_max_bytes
    assert dropped("too_large") == large + 1
    for _ in range(20):  # ~1.4 KiB each, 20 of them: far over 8 KiB
        publisher.publish(event(1000))
    assert publisher.queued_bytes <= 8192
    queued = publisher.queue.qsize()
    assert 0 < queued < 20
    assert dropped("queue_full") == full + 20 - queued

    publisher.start()
    try:
        for _ in range(100):
            if await redis.xlen(stream) == queued:
                break
            await asyncio.sleep(0.05)
        assert await redis.xlen(stream) == queued
        assert publisher.queued_bytes == 0
    finally:
        await publisher.stop()
        await redis.delete(stream)


# ------------------------------------------------------------------ Redis memory is capped


def test_embedded_redis_has_a_memory_cap_and_never_evicts(isolated: Isolated) -> None:
    """The embedded Redis (what `stockmanager up` runs, and this stack) has `maxmemory` (the
    setting's default) and the policy that never evicts sessions or rate-limit counters."""
    config = isolated.redis.config_get("maxmemory*")
    assert int(config["maxmemory"]) == 1024**3  # STOCKMANAGER_REDIS_MAXMEMORY's default: 1gb
    assert config["maxmemory-policy"] == "noeviction"


def test_a_full_redis_answers_503_and_keeps_sessions(isolated: Isolated) -> None:
    """Redis at its memory cap: logins get the gateway's JSON 503 (a write is refused, nothing
    evicted), an existing session is still there afterwards, and everything works again once
    there is room."""
    username, password = isolated.user()
    with httpx.Client(base_url=isolated.gateways[0], timeout=30) as client:
        assert client.post(
            "/api/login", json={"username": username, "password": password}
        ).is_success
        sessions_before = set(isolated.redis.scan_iter(match="sm:session:*", count=1000))
        assert sessions_before
        configured = isolated.redis.config_get("maxmemory")["maxmemory"]
        used = int(isolated.redis.info("memory")["used_memory"])
        isolated.redis.config_set("maxmemory", str(max(used // 2, 1024 * 1024)))
        try:
            refused = _login(isolated.gateways[0], username, password)
            assert refused.status_code == 503
            assert refused.headers["content-type"].startswith("application/json")
            assert refused.json()["code"] == "service_unavailable"
        finally:
            isolated.redis.config_set("maxmemory", configured)
        assert sessions_before <= set(isolated.redis.scan_iter(match="sm:session:*", count=1000))
        assert client.get("/api/session").json()["username"] == username
    assert _login(isolated.gateways[0], username, password).status_code == 200
