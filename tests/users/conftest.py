"""Fixtures for the users-service tests: accounts made through the API as root, polling, and a
private gateway + users pair wired to a real SMTP server (aiosmtpd) for the password reset."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from stockmanager.embedded import free_port
from stockmanager.supervisor import Supervisor
from tests.support.stack import ApiClient, Stack, gateway_spec, service_spec, unique

PASSWORD = "secret-pass-1"


@dataclass
class Account:
    id: int
    username: str
    email: str
    password: str
    role: str


def create_account(
    admin: httpx.Client, role: str = "vendedor", *, prefix: str = "u", password: str = PASSWORD
) -> Account:
    username = unique(prefix)
    email = f"{username}@example.com"
    response = admin.post(
        "/api/users",
        json={"username": username, "email": email, "password": password, "role": role},
    )
    assert response.status_code == 201, response.text
    return Account(response.json()["id"], username, email, password, role)


def assert_error(
    response: httpx.Response, status: int, message: str | None = None, **extra: Any
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str), body
    if message is not None:
        assert body["error"] == message, body
    for key, value in extra.items():
        assert body.get(key) == value, body
    return body


def wait_for(
    predicate: Callable[[], bool], *, timeout: float = 1.0, interval: float = 0.02
) -> bool:
    """Poll until `predicate()` holds or `timeout` passes; the last result is returned."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(interval)


def signed_out(client: httpx.Client) -> Callable[[], bool]:
    """A `wait_for` predicate: the client's session no longer works."""
    return lambda: client.get("/api/session").status_code == 401


@pytest.fixture(scope="session")
def root_client(stack: Stack) -> Iterator[ApiClient]:
    with stack.root() as client:
        yield client


@pytest.fixture
def make_account(root_client: ApiClient) -> Callable[..., Account]:
    def make(role: str = "vendedor", **kwargs: Any) -> Account:
        return create_account(root_client, role, **kwargs)

    return make


@pytest.fixture(scope="session")
def admin(stack: Stack, root_client: ApiClient) -> Iterator[tuple[Account, ApiClient]]:
    account = create_account(root_client, "admin", prefix="adm")
    with stack.login(account.username, account.password) as client:
        yield account, client


@pytest.fixture(scope="session")
def seller(stack: Stack, root_client: ApiClient) -> Iterator[tuple[Account, ApiClient]]:
    account = create_account(root_client, "vendedor", prefix="sel")
    with stack.login(account.username, account.password) as client:
        yield account, client


# --- SMTP -------------------------------------------------------------------------------------


class Mailbox:
    """What a real SMTP server (aiosmtpd, in this test process) received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="session")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class MailStack:
    base_url: str
    mailbox: Mailbox

    def client(self) -> ApiClient:
        return ApiClient(base_url=self.base_url, timeout=30.0)


@contextmanager
def users_behind_gateway(
    stack: Stack, users_env: dict[str, str], log_path: Path, suffix: str
) -> Iterator[str]:
    """A users service with `users_env` added and a gateway that sends users' routes to it
    (every other route to the shared stack's services); yields the gateway's base URL."""
    users_port, gateway_port = free_port(), free_port()
    specs = [
        service_spec("users", users_port, {**stack.env, **users_env}, f"users-{suffix}"),
        gateway_spec(
            f"gateway-{suffix}",
            gateway_port,
            {**stack.env, "STOCKMANAGER_USERS_URLS": f"http://127.0.0.1:{users_port}"},
        ),
    ]
    with log_path.open("w") as log_file:
        supervisor = Supervisor(specs, out=log_file)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=60)
            yield f"http://127.0.0.1:{gateway_port}"
        finally:
            supervisor.stop()


@pytest.fixture(scope="session")
def mail_stack(stack: Stack, mailbox: tuple[Mailbox, int], data_root: Path) -> Iterator[MailStack]:
    """A second gateway whose users service sends mail to the test SMTP server.

    Same database, Redis and internal secret as `stack`; the other services are the shared
    stack's. (The shared stack itself runs without SMTP, i.e. in log mode.)
    """
    box, smtp_port = mailbox
    smtp_env = {
        "STOCKMANAGER_SMTP_HOST": "127.0.0.1",
        "STOCKMANAGER_SMTP_PORT": str(smtp_port),
        "STOCKMANAGER_SMTP_TLS": "none",
        "STOCKMANAGER_SMTP_FROM": "StockManager <no-reply@example.com>",
    }
    with users_behind_gateway(stack, smtp_env, data_root / "mail-stack.log", "smtp") as url:
        yield MailStack(base_url=url, mailbox=box)


@pytest.fixture(scope="session")
def log_codes_stack(stack: Stack, data_root: Path) -> Iterator[MailStack]:
    """A second gateway whose users service has no SMTP and the development setting
    STOCKMANAGER_LOG_RESET_CODES=1, so it writes reset mail (code included) to its log,
    `data_root / "log-codes-stack.log"`. The shared stack keeps the default (off): no code in
    its logs. Its mailbox stays empty."""
    env = {"STOCKMANAGER_LOG_RESET_CODES": "1"}
    with users_behind_gateway(stack, env, data_root / "log-codes-stack.log", "log-codes") as url:
        yield MailStack(base_url=url, mailbox=Mailbox())
