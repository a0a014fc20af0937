"""Secrets and leaks (issue 14): the internal secret, X-Forwarded-For trust in production, reset
codes in the logs, and the links a notification may carry.

Each test attacks what an outsider can reach: a process started with a guessable secret (anyone
who reaches a service port could sign a root identity), a production overlay that believes any
pod's X-Forwarded-For, a reset code readable in /api/debug/logs, a `javascript:` link offered to
every reader of a notification.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockmanager.embedded import free_port
from stockmanager.settings import DEV_INTERNAL_SECRET
from tests.deploy.conftest import K8S, PRODUCTION, production_secrets_env, render
from tests.support.factories import create_user_row
from tests.support.stack import ApiClient, Stack, unique

REPO = Path(__file__).resolve().parents[2]
PROCESSES = ["gateway", "products", "sales", "users", "metrics", "notifications", "audit"]
SECRET = "STOCKMANAGER_INTERNAL_SECRET"


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)
    return True


# ------------------------------------------------------------------------- the internal secret


def _run(
    argv: list[str], env: dict[str, str], *, limit: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a command that must exit by itself; one that starts serving instead is killed (with
    everything it started) and reported as still running."""
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        pytest.fail(f"{argv[3:]} kept running instead of refusing to start:\n{err[-2000:]}")
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def _serve_env(stack: Stack, secret: str | None) -> dict[str, str]:
    env = {**os.environ, **stack.env}
    env.pop(SECRET, None)
    # A lower-case spelling would reach pydantic-settings too (case-insensitive): none may linger.
    env = {k: v for k, v in env.items() if k.upper() != SECRET}
    if secret is not None:
        env[SECRET] = secret
    return env


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "is not set"),
        ("", "is not set"),
        (DEV_INTERNAL_SECRET, "public development default"),
        ("CHANGE-ME", "too short"),
        ("x" * 31, "too short"),
        ("ñ" * 15 + "x", "too short"),  # 31 bytes in UTF-8 (16 characters)
    ],
    ids=["missing", "empty", "default", "placeholder", "31-bytes", "31-utf8-bytes"],
)
def test_gateway_refuses_a_missing_default_or_short_secret(
    stack: Stack, secret: str | None, reason: str
) -> None:
    """With the public default anyone could sign `root` for a service port; with CHANGE-ME the
    key is guessable. The gateway must not start: clear message on stderr, non-zero exit."""
    argv = [sys.executable, "-m", "stockmanager", "serve", "gateway", "--port", str(free_port())]
    result = _run(argv, _serve_env(stack, secret))
    assert result.returncode != 0
    assert SECRET in result.stderr and reason in result.stderr, result.stderr
    assert "refusing to start" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("name", PROCESSES[1:])
def test_every_service_refuses_a_default_secret(stack: Stack, name: str) -> None:
    argv = [sys.executable, "-m", "stockmanager", "serve", name, "--port", str(free_port())]
    for secret in (None, DEV_INTERNAL_SECRET, "CHANGE-ME"):
        result = _run(argv, _serve_env(stack, secret))
        assert result.returncode != 0, (name, secret)
        assert SECRET in result.stderr and "refusing to start" in result.stderr, result.stderr


def test_up_refuses_a_short_secret_from_the_environment(tmp_path: Path) -> None:
    """`up` generates a secret only when none is given; a short one given is refused before
    anything starts (no embedded database left behind)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env[SECRET] = "CHANGE-ME"
    data_dir = tmp_path / "up"
    argv = [
        sys.executable,
        "-m",
        "stockmanager",
        "up",
        "--port",
        str(free_port()),
        "--data-dir",
        str(data_dir),
    ]
    result = _run(argv, env)
    assert result.returncode != 0
    assert SECRET in result.stderr and "too short" in result.stderr, result.stderr
    assert not (data_dir / "postgres").exists()


def test_deployment_files_never_carry_a_usable_short_secret() -> None:
    """Compose demands the secret and says how to make one; the examples an operator copies say
    how long it must be (their CHANGE-ME placeholder would be refused at start)."""
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    value = compose["x-common-env"][SECRET]
    assert value.startswith("${STOCKMANAGER_INTERNAL_SECRET:?"), value
    for example in (
        REPO / "deploy" / ".env.example",
        REPO / "deploy" / "k8s" / "overlays" / "production" / "secrets.env.example",
    ):
        text = example.read_text()
        assert "32 bytes" in text and "openssl rand -hex 32" in text, example
    assert len(production_secrets_env()[SECRET].encode()) >= 32


# ------------------------------------------------------- X-Forwarded-For trust in production


@pytest.fixture(scope="module")
def production_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("k8s-security") / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("secrets.env"))
    lines = [f"{key}={value}" for key, value in production_secrets_env().items()]
    (target / PRODUCTION / "secrets.env").write_text("\n".join(lines) + "\n")
    (config,) = [o for o in render(target / PRODUCTION) if o["kind"] == "ConfigMap"]
    data: dict[str, str] = config["data"]
    return data


def test_production_trusts_forwarded_for_only_from_a_narrow_range(
    production_config: dict[str, str],
) -> None:
    """Whoever sits in a trusted range picks their own client IP (unlimited guessing, forged
    audit IPs): production trusts only the ingress controller's own small address range."""
    value = production_config["STOCKMANAGER_TRUSTED_PROXIES"]
    networks = [ipaddress.ip_network(cidr.strip()) for cidr in value.split(",") if cidr.strip()]
    assert networks, value
    for network in networks:
        assert network.num_addresses <= 256, f"{network} trusts {network.num_addresses} addresses"
    operations = (REPO / "docs" / "operations.md").read_text()
    assert value in operations, "the production value and its meaning are documented"
    assert "10.0.0.0/8" not in value


# ------------------------------------------------------------------ reset codes and the logs


def _reset_code_of(stack: Stack, user_id: int) -> str:
    """The live reset code of a user, recovered from its stored HMAC (10^6 candidates): what an
    attacker reading the logs would learn if a code were written there."""
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute(
            "SELECT code_hash FROM users.password_resets WHERE user_id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    key = stack.env[SECRET].encode()
    prefix = hmac.new(key, f"{user_id}:".encode(), hashlib.sha256)
    for number in range(10**6):
        code = f"{number:06d}"
        candidate = prefix.copy()
        candidate.update(code.encode())
        if hmac.compare_digest(candidate.hexdigest(), row[0]):
            return code
    raise AssertionError("no 6-digit code matches the stored hash")


def _debug_log_lines(root: ApiClient) -> list[str]:
    response = root.get("/api/debug/logs")
    assert response.status_code == 200, response.text
    lines: list[str] = response.json()["logs"]
    return lines


def test_reset_codes_never_reach_the_logs_by_default(stack: Stack, data_root: Path) -> None:
    """The shared stack has no SMTP and no development setting: a reset request leaves a line
    saying the mail was not delivered, and its code is neither in /api/debug/logs nor in any
    process's output."""
    username = unique("rst")
    email = f"{username}@example.test"
    user_id = create_user_row(stack.env["DATABASE_URL"], username, "pass-rst-1", email=email)
    with stack.client() as anonymous:
        response = anonymous.post("/api/users/reset-password", json={"email": email})
        assert response.status_code == 200, response.text

    with stack.root() as root:
        found: list[str] = []

        def delivered_or_reported() -> bool:
            found[:] = [line for line in _debug_log_lines(root) if email in line]
            return any("mail not delivered" in line for line in found)

        assert wait_for(delivered_or_reported, timeout=20), found
        code = _reset_code_of(stack, user_id)
        # The recovered code is the live one: the attack would work with it.
        with stack.client() as anonymous:
            check = anonymous.post("/api/users/validate-code", json={"email": email, "code": code})
            assert check.status_code == 200, check.text
        lines = _debug_log_lines(root)
    assert not [line for line in lines if code in line and email in line]
    assert not [line for line in lines if "mail_body" in line and email in line]
    output = (data_root / "stack.log").read_text(errors="replace")
    mine = [line for line in output.splitlines() if email in line]
    assert mine and not [line for line in mine if code in line or "mail_body" in line], mine


def test_without_smtp_a_startup_warning_says_codes_cannot_be_delivered(
    stack: Stack, data_root: Path
) -> None:
    output = (data_root / "stack.log").read_text(errors="replace")
    warnings = []
    for line in output.splitlines():
        if "{" not in line:
            continue
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if entry.get("process") == "users" and entry.get("level") == "warning":
            warnings.append(entry["msg"])
    assert any(
        "SMTP is not configured" in msg and "cannot be delivered" in msg for msg in warnings
    ), warnings


# ---------------------------------------------------------------- notification action links


@pytest.fixture(scope="module")
def reader(stack: Stack) -> Iterator[tuple[int, ApiClient]]:
    username = unique("rdr")
    user_id = create_user_row(stack.env["DATABASE_URL"], username, "reader-pass-1")
    with stack.login(username, "reader-pass-1") as client:
        yield user_id, client


UNSAFE_ACTION_URL = (
    "action_url debe ser una ruta relativa que empiece con / o una URL http:// o https://"
)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "  javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "//evil.example.com/login",
        "/\\evil.example.com",
        "/\t/evil.example.com",
        "https:evil.example.com",
        "http:///evil.example.com",
        "ftp://files.example.com/x",
        "productos",
    ],
)
def test_notification_links_refuse_script_and_foreign_schemes(
    stack: Stack, reader: tuple[int, ApiClient], url: str
) -> None:
    user_id, client = reader
    title = unique("link")
    with stack.root() as root:
        response = root.post(
            "/api/notifications/create",
            json={"user_id": user_id, "title": title, "message": "m", "action_url": url},
        )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == UNSAFE_ACTION_URL
    listed = client.get("/api/notifications/all")
    assert listed.status_code == 200
    assert title not in listed.text


@pytest.mark.parametrize(
    "url",
    ["/productos", "/productos?id=3#stock", "https://stock.example.com/x", "HTTP://example.com"],
)
def test_notification_links_accept_http_and_site_paths(
    stack: Stack, reader: tuple[int, ApiClient], url: str
) -> None:
    user_id, client = reader
    title = unique("link")
    with stack.root() as root:
        response = root.post(
            "/api/notifications/create",
            json={"user_id": user_id, "title": title, "message": "m", "action_url": url},
        )
    assert response.status_code == 201, response.text
    (item,) = [n for n in client.get("/api/notifications/all").json() if n["title"] == title]
    assert item["action_url"] == url
