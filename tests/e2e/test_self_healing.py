"""`stockmanager up` heals itself (issue 18): real processes, kill -9, no mocks.

One `up` on a temporary data directory serves the healing tests (a class-scoped fixture); the
crash-loop test starts its own afterwards (`up` binds fixed service ports, so never two at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stockmanager.embedded import free_port
from tests.e2e.test_up import descendants_alive, stop, wait_for_banner
from tests.support.waiting import eventually, gone


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    base_url: str
    internal_url: str
    password: str

    def status(self) -> dict[str, Any]:
        processes: dict[str, Any] = json.loads((self.data_dir / "supervisor.json").read_text())[
            "processes"
        ]
        return processes

    def pids(self) -> dict[str, int]:
        return {name: entry["pid"] for name, entry in self.status().items()}

    @contextlib.contextmanager
    def root(self) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            login = client.post("/api/login", json={"username": "root", "password": self.password})
            assert login.status_code == 200, login.text
            yield client

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_up(tmp: Path, name: str, extra_env: dict[str, str] | None = None) -> Up:
    removed = ("DATABASE_URL", "REDIS_URL", "STOCKMANAGER_ROOT_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in removed}
    env.pop("STOCKMANAGER_INTERNAL_SECRET", None)
    internal_port = free_port()
    env["STOCKMANAGER_GATEWAY_INTERNAL_PORT"] = str(internal_port)
    env.update(extra_env or {})
    port = free_port()
    data_dir = tmp / f"{name}-data"
    log = tmp / f"{name}.log"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "stockmanager", "up"),
            *("--port", str(port), "--data-dir", str(data_dir)),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return Up(
        proc=proc,
        data_dir=data_dir,
        log=log,
        base_url=f"http://127.0.0.1:{port}",
        internal_url=f"http://127.0.0.1:{internal_port}",
        password="",
    )


def create_product(client: httpx.Client, stock: int = 1000) -> str:
    barcode = uuid.uuid4().hex[:16]
    response = client.post(
        "/api/products",
        json={
            "barcode": barcode,
            "name": f"H{barcode[:10]}",
            "quantity": stock,
            "min_quantity": 0,
            "price": 2.5,
        },
    )
    assert response.status_code == 201, response.text
    return barcode


def sale_succeeds(client: httpx.Client, barcode: str, key: str) -> bool:
    """One checkout attempt through the gateway (a retry reuses `key`: never two sales)."""
    try:
        response = client.post(
            "/api/sales",
            json={"barcode": barcode, "quantity": 1},
            headers={"Idempotency-Key": key},
        )
    except httpx.TransportError:
        return False
    if response.status_code in (503, 504):
        assert response.json()["code"] in ("service_unavailable", "gateway_timeout")
        return False
    assert response.status_code == 201, response.text
    return True


class SseReader:
    """Reads `/api/notifications/stream` in a thread; `lines` grows as data arrives."""

    def __init__(self, up: Up, client: httpx.Client) -> None:
        self.lines: list[str] = []
        self.ended = False
        self._client = httpx.Client(
            base_url=up.base_url, cookies=client.cookies, timeout=httpx.Timeout(10, read=None)
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        eventually(lambda: "event: init" in self.lines, timeout=30, what="stream opened")

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/notifications/stream") as response:
                for line in response.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError:
            pass
        finally:
            self.ended = True

    def updates_mentioning(self, text: str) -> bool:
        return any(line.startswith("data:") and text in line for line in self.lines)

    def close(self) -> None:
        self._client.close()


def audited(client: httpx.Client, product_name: str) -> bool:
    response = client.get("/api/all")
    return response.status_code == 200 and product_name in response.text


def kill_and_recover(up: Up, victim: str, client: httpx.Client, barcode: str) -> float:
    """kill -9 `victim`; return the seconds until a checkout through the gateway succeeds."""
    before = up.pids()
    old = before[victim]
    os.kill(old, signal.SIGKILL)
    started = time.monotonic()
    key = str(uuid.uuid4())
    eventually(lambda: sale_succeeds(client, barcode, key), timeout=60, what=f"{victim} back")
    recovered = time.monotonic() - started
    eventually(lambda: gone(old), what=f"old {victim} gone")
    eventually(
        lambda: up.status()[victim]["state"] == "running" and up.pids()[victim] != old,
        what=f"{victim} restarted",
    )
    after = up.pids()
    # Everything else keeps its pid: the failure stayed where it happened.
    assert {n: p for n, p in after.items() if n != victim} == {
        n: p for n, p in before.items() if n != victim
    }
    print(f"time to recover from kill -9 of {victim}: {recovered:.2f}s")
    return recovered


@pytest.fixture(scope="class")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One `up` for the tests of a class, stopped (Ctrl-C) after them: cleanly, leaving nothing."""
    running = start_up(tmp_path_factory.mktemp("heal"), "heal")
    try:
        running.password = wait_for_banner(running.log, running.proc)
        yield running
    finally:
        children = list(running.pids().values()) if running.password else []
        elapsed = stop(running.proc)
        assert running.proc.returncode == 0, running.output()[-3000:]
        assert elapsed < 15, f"stopping took {elapsed:.1f}s"
        assert descendants_alive(running.data_dir, [p for p in children if p]) == []


class TestSelfHealing:
    def test_a_killed_service_is_restarted_and_serving_the_rest_untouched(self, up: Up) -> None:
        with up.root() as client:
            barcode = create_product(client)
            assert sale_succeeds(client, barcode, str(uuid.uuid4()))
            kill_and_recover(up, "sales", client, barcode)
            status = up.status()
            assert status["sales"]["restarts"] == 1
            assert status["sales"]["last_exit_code"] == -signal.SIGKILL
            assert "sales exited with code -9; restart 1 in 0.5s" in up.output()

            # Root's deep health and the gateway's /metrics show it.
            deep = client.get("/api/health", params={"deep": "1"}).json()
            assert deep["processes"]["sales"]["restarts"] == 1
            assert deep["processes"]["sales"]["state"] == "running"
            assert deep["processes"]["postgres"]["state"] == "running"
            metrics = httpx.get(up.internal_url + "/metrics").text
            assert 'stockmanager_process_restarts_total{process="sales"} 1.0' in metrics
            assert 'stockmanager_process_up{process="sales"} 1.0' in metrics
            assert re.search(
                r'stockmanager_upstream_replica_up\{replica="http://127.0.0.1:5102",'
                r'service="sales"\} 1.0',
                metrics,
            )

    def test_a_hung_replica_shows_as_down_in_deep_health_and_metrics(self, up: Up) -> None:
        pid = up.pids()["audit"]
        os.kill(pid, signal.SIGSTOP)  # alive but not answering: only the probes can tell
        try:
            with up.root() as client:

                def audit_down() -> bool:
                    deep = client.get("/api/health", params={"deep": "1"})
                    return deep.status_code == 503 and "audit" in deep.json()["down"]

                eventually(audit_down, timeout=30, what="audit reported down")
                metrics = httpx.get(up.internal_url + "/metrics", timeout=30).text
                assert re.search(
                    r'stockmanager_upstream_replica_up\{replica="[^"]+",service="audit"\} 0.0',
                    metrics,
                )
        finally:
            os.kill(pid, signal.SIGCONT)

    @pytest.mark.parametrize("server", ["redis", "postgres"])
    def test_a_killed_embedded_server_is_restarted_and_checkouts_work_again(
        self, up: Up, server: str
    ) -> None:
        with up.root() as client:
            barcode = create_product(client)
            port_file = {"redis": "redis.pid", "postgres": "postmaster.pid"}[server]
            stream = SseReader(up, client)  # open before the kill: must keep working
            kill_and_recover(up, server, client, barcode)
            assert up.status()[server]["restarts"] == 1
            assert f"{server} exited with code -9; restart 1 in 0.5s" in up.output()
            assert f"{server} is back (pid {up.pids()[server]})" in up.output()
            assert (up.data_dir / server / port_file).exists()
            # Consumers and the relay reconnected: a new sale reaches the audit trail.
            product = f"H{barcode[:10]}"
            key = str(uuid.uuid4())
            eventually(lambda: sale_succeeds(client, barcode, key), timeout=30, what="sale")
            eventually(lambda: audited(client, product), timeout=30, what="sale audited")
            # The notifications fan-out re-subscribed: the stream opened before gets the update.
            eventually(lambda: stream.updates_mentioning(product), timeout=30, what="SSE update")
            assert not stream.ended
            stream.close()
            eventually(
                lambda: client.get("/api/health", params={"deep": "1"}).status_code == 200,
                timeout=30,
                what="deep health Ok",
            )


def test_a_service_that_always_crashes_stops_the_system_with_a_message(tmp_path: Path) -> None:
    # Only sales reads this setting: sales fails at every start, everything else is fine.
    up = start_up(
        tmp_path,
        "loop",
        {
            "STOCKMANAGER_CHECKOUT_POOL_SIZE": "not-a-number",
            "STOCKMANAGER_RESTART_MAX": "2",
            "STOCKMANAGER_RESTART_MAX_BACKOFF": "0.2",
        },
    )
    try:
        code = up.proc.wait(timeout=180)
    finally:
        stop(up.proc)
    text = up.output()
    assert code != 0, text[-3000:]
    assert "sales exited with code 1; restart 1 in 0.2s" in text
    assert "sales exited with code 1; restart 2 in 0.2s" in text
    assert "sales exited with code 1: crash loop (2 restarts within 60s, at most 2 allowed)" in text
    assert "StockManager is up" not in text
    status = json.loads((up.data_dir / "supervisor.json").read_text())["processes"]
    assert status["sales"]["restarts"] == 2
    assert all(entry["state"] == "stopped" for entry in status.values()), status
    assert descendants_alive(up.data_dir, []) == []
