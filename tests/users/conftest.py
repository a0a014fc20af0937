"""Fixtures for the users-service tests: accounts made through the API as root, polling, and a
private gateway + users pair wired to a real SMTP server (aiosmtpd) for the password reset."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from stockmanager.embedded import free_port
from stockmanager.supervisor import ProcessSpec, Supervisor
from tests.support.stack import ApiClient, Stack, gateway_spec, unique

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


@pytest.fixture(scope="session")
def mail_stack(stack: Stack, mailbox: tuple[Mailbox, int], data_root: Path) -> Iterator[MailStack]:
    """A second gateway whose users service sends mail to the test SMTP server.

    Same database, Redis and internal secret as `stack`; the other services are the shared
    stack's. (The shared stack itself runs without SMTP, i.e. in log mode.)
    """
    box, smtp_port = mailbox
    users_port, gateway_port = free_port(), free_port()
    smtp_env = {
        "STOCKMANAGER_SMTP_HOST": "127.0.0.1",
        "STOCKMANAGER_SMTP_PORT": str(smtp_port),
        "STOCKMANAGER_SMTP_TLS": "none",
        "STOCKMANAGER_SMTP_FROM": "StockManager <no-reply@example.com>",
    }
    specs = [
        ProcessSpec(
            name="users-smtp",
            argv=[
                sys.executable,
                "-m",
                "stockmanager",
                "serve",
                "users",
                "--port",
                str(users_port),
            ],
            env={**stack.env, **smtp_env},
            ready_url=f"http://127.0.0.1:{users_port}/readyz",
        ),
        gateway_spec(
            "gateway-smtp",
            gateway_port,
            {**stack.env, "STOCKMANAGER_USERS_URLS": f"http://127.0.0.1:{users_port}"},
        ),
    ]
    log_file = (data_root / "mail-stack.log").open("w")
    supervisor = Supervisor(specs, out=log_file)
    supervisor.start()
    try:
        supervisor.wait_ready(timeout=60)
        yield MailStack(base_url=f"http://127.0.0.1:{gateway_port}", mailbox=box)
    finally:
        supervisor.stop()
        log_file.close()


@pytest.fixture(scope="session")
def log_codes_stack(stack: Stack, data_root: Path) -> Iterator[MailStack]:
    """A second gateway whose users service has no SMTP and the development setting
    STOCKMANAGER_LOG_RESET_CODES=1, so it writes reset mail (code included) to its log,
    `data_root / "log-codes-stack.log"`. The shared stack keeps the default (off): no code in
    its logs. Its mailbox stays empty."""
    users_port, gateway_port = free_port(), free_port()
    specs = [
        ProcessSpec(
            name="users-log-codes",
            argv=[
                sys.executable,
                "-m",
                "stockmanager",
                "serve",
                "users",
                "--port",
                str(users_port),
            ],
            env={**stack.env, "STOCKMANAGER_LOG_RESET_CODES": "1"},
            ready_url=f"http://127.0.0.1:{users_port}/readyz",
        ),
        gateway_spec(
            "gateway-log-codes",
            gateway_port,
            {**stack.env, "STOCKMANAGER_USERS_URLS": f"http://127.0.0.1:{users_port}"},
        ),
    ]
    log_file = (data_root / "log-codes-stack.log").open("w")
    supervisor = Supervisor(specs, out=log_file)
    supervisor.start()
    try:
        supervisor.wait_ready(timeout=60)
        yield MailStack(base_url=f"http://127.0.0.1:{gateway_port}", mailbox=Mailbox())
    finally:
        supervisor.stop()
        log_file.close()
