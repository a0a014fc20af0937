"""`stockmanager up` as a user runs it: embedded servers, banner, login, Ctrl-C, restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from stockmanager.embedded import free_port


def start_up(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "STOCKMANAGER_ROOT_PASSWORD",
            "STOCKMANAGER_INTERNAL_SECRET",
        )
    }
    # The gateway's internal listener (/readyz, /metrics): a free port, not the default 5090.
    env["STOCKMANAGER_GATEWAY_INTERNAL_PORT"] = str(free_port())
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockmanager",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def wait_for_banner(log: Path, proc: subprocess.Popen[bytes], within: float = 120) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "StockManager is up" in text:
            match = re.search(r"Login:\s+root / (\S+)", text)
            assert match, text[-2000:]
            return match.group(1)
        assert proc.poll() is None, text[-3000:]
        time.sleep(0.2)
    raise AssertionError("no banner: " + log.read_text(errors="replace")[-3000:])


def descendants_alive(data_dir: Path, pids: list[int]) -> list[int]:
    alive = [
        pid
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            alive.append(proc.info["pid"])
    return alive


def stop(proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    if proc.poll() is not None:
        return 0.0  # already exited: the assertion that noticed it tells why
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    proc.wait(timeout=30)
    return time.monotonic() - started


def test_up_prints_credentials_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    proc = start_up(data_dir, port, tmp_path / "up1.log")
    try:
        password = wait_for_banner(tmp_path / "up1.log", proc)
        assert httpx.get(base + "/api/health").json() == {"status": "Ok"}
        with httpx.Client(base_url=base) as client:
            login = client.post("/api/login", json={"username": "root", "password": password})
            assert login.status_code == 200 and login.json()["role"] == "root"
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(children) >= 2
    finally:
        elapsed = stop(proc)
    assert elapsed < 10, f"stopping took {elapsed:.1f}s"
    assert descendants_alive(data_dir, children) == []

    proc = start_up(data_dir, port, tmp_path / "up2.log")
    try:
        shown = wait_for_banner(tmp_path / "up2.log", proc)
        assert shown == password
        with httpx.Client(base_url=base) as client:
            login = client.post("/api/login", json={"username": "root", "password": password})
            assert login.status_code == 200
    finally:
        stop(proc)
