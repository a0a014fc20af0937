"""Public POSTs under attack (issue 14): registration and the password-reset steps.

- Per-address limits on `/api/register`, the reset request, code validation and the code change,
  shared by every gateway replica (counters in Redis): a burst from one address gets 429 with
  `Retry-After` past the limit, another address is still served, and the OpenAPI document says so.
- Per-account daily caps on reset codes issued and wrong codes tried, which hold even when every
  guess comes from a new address, and answer like today's refusals.
- Argon2 runs under a concurrency bound, and a registration or account creation whose name or
  e-mail is taken is refused before any password is hashed.

The limits count per client address, and the whole suite sends from 127.0.0.1, so these tests run
on a stack of their own (own database, own Redis, own SMTP server) with the limits at their real
defaults, plus a second gateway replica. That stack trusts X-Forwarded-For from 127.0.0.1, as a
gateway behind an ingress does, so each test speaks from client addresses of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller

from gateway.publiclimits import address_bucket
from gateway.settings import GatewaySettings
from services.users.passwords import HashingSlots, default_max_concurrency
from services.users.settings import UsersSettings
from stockmanager.embedded import free_port
from tests.support.isolated import isolated_backends
from tests.support.stack import ApiClient, Stack, extra_gateway, start_stack, unique
from tests.users.conftest import Mailbox

PASSWORD = "secret-pass-1"
SENT = {"message": "Codigo enviado al correo"}
VERIFIED = {"message": "Código verificado, puedes restablecer tu contraseña"}
RATE_LIMITED = {"error": "Demasiados intentos. Intenta de nuevo más tarde", "code": "rate_limited"}
INVALID_CODE = "Código inválido o expirado"
NOT_VERIFIED = "Código no verificado o expirado"
CODE = re.compile(r"\b(\d{6})\b")
LIMITED_OPERATIONS = [
    "/api/register",
    "/api/users/reset-password",
    "/api/users/validate-code",
    "/api/users/reset-password/change-password",
]


def default(settings: type[Any], name: str) -> int:
    """A setting's default as the code defines it (whatever the test process's environment)."""
    value = settings.model_fields[name].get_default(call_default_factory=True)
    assert isinstance(value, int)
    return value


REGISTER_LIMIT = default(GatewaySettings, "register_limit")
REGISTER_WINDOW = default(GatewaySettings, "register_limit_window")
RESET_REQUEST_LIMIT = default(GatewaySettings, "reset_request_limit")
RESET_REQUEST_WINDOW = default(GatewaySettings, "reset_request_limit_window")
RESET_CODE_LIMIT = default(GatewaySettings, "reset_code_limit")
RESET_CODE_WINDOW = default(GatewaySettings, "reset_code_limit_window")
DAILY_CODES = default(UsersSettings, "reset_daily_max_requests")
DAILY_WRONG = default(UsersSettings, "reset_daily_max_wrong_codes")
ATTEMPTS_PER_CODE = default(UsersSettings, "reset_max_attempts")

_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other request of this module has used."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


# --------------------------------------------------------------------------------- the stack


@dataclass
class PostsStack:
    stack: Stack
    gateways: list[str]  # base URLs of both gateway replicas
    database_url: str
    mailbox: Mailbox

    def client(self, address: str, replica: int = 0) -> ApiClient:
        """A client of one gateway replica, seen by it as coming from `address`."""
        return ApiClient(
            base_url=self.gateways[replica],
            timeout=60.0,
            headers={"X-Forwarded-For": address},
        )

    def root(self) -> ApiClient:
        return self.stack.root()


@pytest.fixture(scope="module")
def posts(migrated: str, data_root: Path) -> Iterator[PostsStack]:
    box = Mailbox()
    smtp_port = free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    log_dir = data_root / "public-posts"
    log_dir.mkdir(exist_ok=True)
    env = {
        # The real defaults, over the raised limits the rest of the suite runs with.
        "STOCKMANAGER_REGISTER_LIMIT": str(REGISTER_LIMIT),
        "STOCKMANAGER_RESET_REQUEST_LIMIT": str(RESET_REQUEST_LIMIT),
        "STOCKMANAGER_RESET_CODE_LIMIT": str(RESET_CODE_LIMIT),
        "STOCKMANAGER_TRUSTED_PROXIES": "127.0.0.1/32",
        # Codes per account per 15 minutes are raised so that the daily cap is the one that
        # binds (reaching it under the default would take an hour of real time).
        "STOCKMANAGER_RESET_MAX_REQUESTS": "1000",
        "STOCKMANAGER_SMTP_HOST": "127.0.0.1",
        "STOCKMANAGER_SMTP_PORT": str(smtp_port),
        "STOCKMANAGER_SMTP_TLS": "none",
    }
    try:
        with (
            isolated_backends(migrated, data_root, "public_posts") as (database_url, redis_url),
            start_stack(
                database_url=database_url, redis_url=redis_url, log_dir=log_dir, extra_env=env
            ) as stack,
            # A second gateway replica on the same Redis and services.
            extra_gateway(stack.env, log_dir / "gateway-2.log", "gateway-2") as second,
        ):
            yield PostsStack(
                stack=stack,
                gateways=[stack.base_url, second],
                database_url=database_url,
                mailbox=box,
            )
    finally:
        smtp.stop()


# --------------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.02)
    return True


def assert_rate_limited(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == RATE_LIMITED
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window


def registration(name: str) -> dict[str, str]:
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD}


def make_account(posts: PostsStack) -> tuple[int, str, str]:
    """An active seller created by root: (id, username, e-mail)."""
    name = unique("pp")
    with posts.root() as root:
        response = root.post(
            "/api/users",
            json={**registration(name), "role": "vendedor"},
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"]), name, f"{name}@example.com"


def codes_for(posts: PostsStack, email: str) -> list[str]:
    found = []
    for message in posts.mailbox.to(email):
        match = CODE.search(message.get_content())
        assert match is not None
        found.append(match.group(1))
    return found


def request_code(posts: PostsStack, email: str, count: int) -> str:
    """Ask for a code from a fresh address; the code of the `count`-th mail to `email`."""
    with posts.client(new_address()) as client:
        response = client.post("/api/users/reset-password", json={"email": email})
    assert (response.status_code, response.json()) == (200, SENT)
    assert wait_for(lambda: len(codes_for(posts, email)) >= count), codes_for(posts, email)
    return codes_for(posts, email)[count - 1]


def guess(posts: PostsStack, email: str, code: str) -> httpx.Response:
    """One code guess on the validate step, from a fresh address."""
    with posts.client(new_address()) as client:
        return client.post("/api/users/validate-code", json={"email": email, "code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def users_named(posts: PostsStack, prefix: str) -> int:
    with psycopg.connect(posts.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM users.users WHERE username LIKE %s", (prefix + "%",)
        ).fetchone()
    assert row is not None
    return int(row[0])


def hashes_computed(posts: PostsStack) -> float:
    """Argon2 hash computations so far in the users process (its Prometheus counter)."""
    text = httpx.get(f"{posts.stack.service_urls['users'][0]}/metrics", timeout=10).text
    found = re.search(
        r'^stockmanager_password_hashing_total\{operation="hash"\} (\S+)$', text, re.MULTILINE
    )
    assert found is not None, "the users process does not count its password hashes"
    return float(found.group(1))


# ------------------------------------------------------------------- per-address limits


def test_thirty_registrations_from_one_address_hit_the_limit_on_every_replica(
    posts: PostsStack,
) -> None:
    token = unique("burst")
    address = new_address()

    def register(i: int) -> httpx.Response:
        # Alternate replicas: the budget is the address's, not one process's.
        with posts.client(address, replica=i % 2) as client:
            return client.post("/api/register", json=registration(f"{token}{i:02d}"))

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(register, range(30)))

    created = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code != 201]
    # Sent all at once, still exactly the limit got through (the counter is atomic).
    assert len(created) == REGISTER_LIMIT, [r.status_code for r in answers]
    for response in refused:
        assert_rate_limited(response, REGISTER_WINDOW)
    # The refused ones never reached the users service: only the accepted accounts exist.
    assert users_named(posts, token) == REGISTER_LIMIT

    # Another address is still served.
    with posts.client(new_address(), replica=1) as other:
        response = other.post("/api/register", json=registration(f"{token}ok"))
    assert response.status_code == 201, response.text


def test_reset_requests_are_limited_per_address_whatever_the_email(posts: PostsStack) -> None:
    _, _, known = make_account(posts)
    address = new_address()
    emails = [known, f"{unique('ghost')}@example.com"]
    for i in range(RESET_REQUEST_LIMIT):
        with posts.client(address, replica=i % 2) as client:
            response = client.post("/api/users/reset-password", json={"email": emails[i % 2]})
        assert (response.status_code, response.json()) == (200, SENT)
    # Over the limit the answer is the same for a known and an unknown address (it says nothing
    # about the account), on either replica.
    for replica, email in enumerate(emails):
        with posts.client(address, replica=replica) as client:
            assert_rate_limited(
                client.post("/api/users/reset-password", json={"email": email}),
                RESET_REQUEST_WINDOW,
            )
    with posts.client(new_address()) as other:
        response = other.post("/api/users/reset-password", json={"email": emails[1]})
    assert (response.status_code, response.json()) == (200, SENT)


def test_code_guesses_are_limited_per_address_across_validate_and_change(
    posts: PostsStack,
) -> None:
    _, _, email = make_account(posts)
    request_code(posts, email, 1)
    address = new_address()
    ghost = f"{unique('ghost')}@example.com"
    # One budget for both steps: each answer is a guess at a code.
    for i in range(RESET_CODE_LIMIT):
        with posts.client(address, replica=i % 2) as client:
            if i % 2:
                response = client.post(
                    "/api/users/reset-password/change-password",
                    json={"email": ghost, "code": "123456", "new_password": "whatever-1"},
                )
                assert response.status_code == 401 and response.json()["error"] == NOT_VERIFIED
            else:
                response = client.post(
                    "/api/users/validate-code", json={"email": ghost, "code": "123456"}
                )
                assert response.status_code == 401 and response.json()["error"] == INVALID_CODE
    with posts.client(address) as client:
        assert_rate_limited(
            client.post("/api/users/validate-code", json={"email": email, "code": "000000"}),
            RESET_CODE_WINDOW,
        )
        assert_rate_limited(
            client.post(
                "/api/users/reset-password/change-password",
                json={"email": email, "code": "000000", "new_password": "whatever-1"},
            ),
            RESET_CODE_WINDOW,
        )
    # Refused at the gateway: the account's own tries on its code were not spent.
    code = codes_for(posts, email)[-1]
    assert guess(posts, email, code).json() == VERIFIED


def test_the_openapi_document_declares_the_limits(posts: PostsStack) -> None:
    with posts.client(new_address()) as client:
        document = client.get("/api/openapi.json").json()
    for path in [*LIMITED_OPERATIONS, "/api/login"]:
        answer = document["paths"][path]["post"]["responses"].get("429")
        assert answer is not None, path
        assert "Retry-After" in answer["headers"], path
    assert "429" not in document["paths"]["/api/health"]["get"]["responses"]


# ------------------------------------------------------------------ per-account daily caps


def test_codes_issued_per_account_are_capped_per_day(posts: PostsStack) -> None:
    _, _, email = make_account(posts)
    last = ""
    for count in range(1, DAILY_CODES + 1):
        last = request_code(posts, email, count)
    ghost = f"{unique('ghost')}@example.com"
    # Past the cap, from yet another address: the same answer as for an unknown e-mail ...
    answers = []
    for address in (email, ghost):
        with posts.client(new_address()) as client:
            answers.append(client.post("/api/users/reset-password", json={"email": address}))
    assert [(r.status_code, r.json()) for r in answers] == [(200, SENT), (200, SENT)]
    # ... but no new code: the last one mailed is still the valid one (a new code replaces it).
    assert guess(posts, email, last).json() == VERIFIED
    assert len(codes_for(posts, email)) == DAILY_CODES


def test_wrong_codes_per_account_are_capped_per_day(posts: PostsStack) -> None:
    _, username, email = make_account(posts)
    rounds = -(-DAILY_WRONG // ATTEMPTS_PER_CODE)
    wrong_guesses = 0
    for count in range(1, rounds + 1):
        code = request_code(posts, email, count)
        for _ in range(min(ATTEMPTS_PER_CODE, DAILY_WRONG - wrong_guesses)):
            response = guess(posts, email, wrong(code))
            assert response.status_code == 401 and response.json()["error"] == INVALID_CODE
            wrong_guesses += 1
    assert wrong_guesses == DAILY_WRONG
    # A fresh code, right, from a fresh address: refused like a wrong one, in both steps, so
    # guessing on this account teaches nothing until the day is over.
    code = request_code(posts, email, rounds + 1)
    response = guess(posts, email, code)
    assert response.status_code == 401 and response.json()["error"] == INVALID_CODE
    with posts.client(new_address()) as client:
        response = client.post(
            "/api/users/reset-password/change-password",
            json={"email": email, "code": code, "new_password": "taken-over-1"},
        )
    assert response.status_code == 401 and response.json()["error"] == NOT_VERIFIED
    # The password is unchanged.
    with posts.client(new_address()) as client:
        login = client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text


# ------------------------------------------------------------------------- Argon2 work


def test_taken_names_are_refused_before_any_password_is_hashed(posts: PostsStack) -> None:
    name = unique("dup")
    before = hashes_computed(posts)
    with posts.client(new_address()) as client:
        assert client.post("/api/register", json=registration(name)).status_code == 201
    # The counter sees a registration's hash ...
    assert hashes_computed(posts) == before + 1
    duplicates = [
        registration(name),
        {**registration(unique("dup")), "email": f"{name}@example.com"},
        {**registration(name.upper()), "email": f"{unique('dup')}@example.com"},
    ]
    with posts.client(new_address()) as client:
        for body in duplicates:
            response = client.post("/api/register", json=body)
            assert response.status_code == 409, response.text
    with posts.root() as root:
        for body in duplicates:
            response = root.post("/api/users", json={**body, "role": "vendedor"})
            assert response.status_code == 409, response.text
    # ... and none for the refused ones.
    assert hashes_computed(posts) == before + 1


async def test_hashing_slots_bound_concurrent_computations() -> None:
    slots = HashingSlots(2)
    release = threading.Event()

    def work(i: int) -> int:
        assert release.wait(30)
        return i

    tasks = [asyncio.create_task(slots.run(work, i)) for i in range(6)]
    deadline = time.monotonic() + 10
    while not (slots.running == 2 and slots.waiting == 4):
        assert time.monotonic() < deadline, (slots.running, slots.waiting)
        await asyncio.sleep(0.01)
    release.set()
    assert sorted(await asyncio.gather(*tasks)) == list(range(6))
    assert (slots.peak, slots.running, slots.waiting) == (2, 0, 0)


async def test_a_cancelled_request_keeps_its_slot_until_the_computation_ends() -> None:
    slots = HashingSlots(1)
    release = threading.Event()
    first = asyncio.create_task(slots.run(release.wait, 30))
    deadline = time.monotonic() + 10
    while slots.running != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first  # the request is gone; its thread still computes
    second = asyncio.create_task(slots.run(lambda: "second"))
    while slots.waiting != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert (slots.running, second.done()) == (1, False)
    release.set()
    assert await second == "second"
    assert slots.peak == 1


def test_default_concurrency_fits_the_memory_budget() -> None:
    # 4 computations of Argon2id's default 64 MiB: 256 MiB per users process.
    assert default_max_concurrency() == 4
    assert default(UsersSettings, "argon2_max_concurrency") == 4


def test_ipv6_clients_are_counted_per_64() -> None:
    assert address_bucket("2001:db8:1:2:3:4:5:6") == address_bucket("2001:db8:1:2:ffff::1")
    assert address_bucket("2001:db8:1:2::1") != address_bucket("2001:db8:1:3::1")
    assert address_bucket("::ffff:192.0.2.7") == address_bucket("192.0.2.7") == "192.0.2.7"
