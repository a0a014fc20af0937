"""Factories and helpers of the metrics tests (plain functions).

Sales and products are written straight into the sales/products tables (the metrics service
only reads them), with times given in the business time zone.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
import psycopg

from stockmanager.embedded import free_port
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity
from stockmanager.supervisor import Supervisor
from tests.support.stack import service_spec

TZ = ZoneInfo("America/Argentina/Buenos_Aires")


def local(
    year: int, month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0
) -> datetime:
    """A business-time-zone wall-clock time as an aware datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=TZ)


def business_today() -> date:
    return datetime.now(TZ).date()


def wait_clear_of_midnight(margin: float = 15.0) -> None:
    """Tests that use "today" must not straddle a business-day boundary."""
    now = datetime.now(TZ)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), TZ)
    remaining = (midnight - now).total_seconds()
    if remaining < margin:
        time.sleep(remaining + 1)


# --- rows --------------------------------------------------------------------------------------


def create_product(
    url: str,
    name: str,
    *,
    price: str,
    quantity: int,
    min_quantity: int = 5,
    barcode: str | None = None,
    status: int = 1,
    expiration_date: date | None = None,
) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO products.items (barcode, name, quantity, min_quantity, price, status,"
            " expiration_date) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (barcode, name, quantity, min_quantity, Decimal(price), status, expiration_date),
        ).fetchone()
    assert row is not None
    return int(row[0])


def create_user(url: str, username: str, role: str = "vendedor", *, status: int = 1) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users.users (username, email, password_hash, role, status, application)"
            " VALUES (%s, %s, 'not-a-login', %s, %s, 'accepted') RETURNING id",
            (username, f"{username}@example.test", role, status),
        ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True, slots=True)
class Line:
    item_id: int
    name: str
    quantity: int
    unit_price: str


def create_sale(
    url: str,
    sold_at: datetime,
    vendor: tuple[int, str],
    lines: Sequence[Line],
    payment_method: str = "Efectivo",
) -> int:
    """A sale with its lines, as the sales service would have committed it."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO sales.sales (created_at, updated_at, vendor_id, vendor_username,"
            " payment_method) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (sold_at, sold_at, vendor[0], vendor[1], payment_method),
        ).fetchone()
        assert row is not None
        sale_id = int(row[0])
        for line in lines:
            conn.execute(
                "INSERT INTO sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price)"
                " VALUES (%s, %s, %s, %s, %s)",
                (sale_id, line.item_id, line.name, line.quantity, Decimal(line.unit_price)),
            )
        conn.commit()
    return sale_id


def delete_sales(url: str, sale_ids: Sequence[int]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM sales.sales WHERE id = ANY (%s)", (list(sale_ids),))


# --- an isolated database with its own metrics process ---------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class IsolatedMetrics:
    """A database of its own (nothing else writes to it) served by its own metrics process,
    called directly with identities signed like the gateway signs them."""

    database_url: str
    base_url: str
    secret: str
    event_stream: str
    supervisor: Supervisor
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def get(self, path: str, role: str = "admin", **params: Any) -> httpx.Response:
        identity = Identity(
            user_id=None if role == "anonymous" else 1,
            username=None if role == "anonymous" else f"test-{role}",
            role=None if role == "anonymous" else role,
            request_id=uuid.uuid4().hex,
            ip="127.0.0.1",
            issued_at=time.time(),
        )
        client = self.clients.setdefault(
            "default", httpx.Client(base_url=self.base_url, timeout=60)
        )
        headers = {IDENTITY_HEADER: sign_identity(identity, self.secret)}
        return client.get(path, params=params or None, headers=headers)

    def json(self, path: str, role: str = "admin", **params: Any) -> Any:
        response = self.get(path, role, **params)
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def isolated_metrics(database_url: str, redis_url: str, log_dir: Path) -> Iterator[IsolatedMetrics]:
    from stockmanager.cli import migrate

    name = f"metrics_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(database_url, name)
    supervisor: Supervisor | None = None
    log = (log_dir / f"{name}.log").open("w")
    try:
        migrate(url)
        port = free_port()
        secret = secrets.token_urlsafe(32)
        stream = f"stockmanager:test:{name}:events"
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "STOCKMANAGER_INTERNAL_SECRET": secret,
            "STOCKMANAGER_EVENT_STREAM": stream,
            "STOCKMANAGER_LOG_STREAM": f"stockmanager:test:{name}:logs",
            # The tests drive the rollup refresher themselves.
            "STOCKMANAGER_METRICS_REFRESH_INTERVAL": "0",
            "STOCKMANAGER_EVENT_RECLAIM_IDLE_MS": "2000",
        }
        supervisor = Supervisor(
            [service_spec("metrics", port, env, "metrics-isolated")],
            out=log,
        )
        supervisor.start()
        supervisor.wait_ready(timeout=60)
        isolated = IsolatedMetrics(url, f"http://127.0.0.1:{port}", secret, stream, supervisor)
        try:
            yield isolated
        finally:
            for client in isolated.clients.values():
                client.close()
    finally:
        if supervisor is not None:
            supervisor.stop()
        log.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
