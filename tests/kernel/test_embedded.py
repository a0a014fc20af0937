"""Embedded PostgreSQL and Redis: real servers in tmp dirs, no mocks."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import redis

from stockmanager.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    free_port,
)
from tests.support.waiting import gone

ROOT = Path(__file__).resolve().parents[2]


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid` (the server and its workers/backends)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def assert_fully_stopped(pid: int) -> None:
    assert gone(pid), f"server pid {pid} still running"
    assert group_members(pid) == [], f"leftovers in process group {pid}"


def orphan_server(kind: str, data_dir: Path) -> tuple[int, int]:
    """Start a server from a child Python that then dies without stopping it (like a SIGKILLed
    `stockmanager up`); return the orphaned server's (pid, port)."""
    code = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from stockmanager.embedded import {kind}
        server = {kind}(Path(sys.argv[1]))
        server.start()
        print(server.pid, server.port, flush=True)
        os._exit(0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


# ---------------------------------------------------------------------------------------------


def test_free_port_prefers_the_given_port_when_free() -> None:
    port = free_port()
    assert free_port(port) == port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        other = free_port(taken)
        assert other != taken
        assert other > 0


def test_postgres_starts_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    pg = EmbeddedPostgres(data)
    url = pg.start()
    try:
        assert url == f"postgresql://postgres@127.0.0.1:{pg.port}/stockmanager"
        assert pg.port not in (5432, None)
        assert (data / "PG_VERSION").exists()
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.execute("SELECT current_database()").fetchone() == ("stockmanager",)
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
            assert conn.execute("SHOW max_connections").fetchone() == ("200",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('survives a restart')")
        first_pid = pg.pid
        assert first_pid is not None
    finally:
        pg.stop()
    assert_fully_stopped(first_pid)
    assert pg.pid is None
    pg.stop()  # idempotent

    with EmbeddedPostgres(data) as again:  # a new object on the same directory: no initdb
        assert again.pid is not None and again.pid != first_pid
        with psycopg.connect(again.url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("survives a restart",)]
        second_pid = again.pid
    assert_fully_stopped(second_pid)
    assert "database system is ready" in (data / "postgresql.log").read_text()


def test_postgres_data_dir_has_a_single_owner(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg", database="other") as pg:
        assert pg.url.endswith("/other")
        with pytest.raises(EmbeddedServerError, match="in use by another process"):
            EmbeddedPostgres(tmp_path / "pg").start()
        with psycopg.connect(pg.url) as conn:  # the first server is untouched
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_takes_over_an_orphan_from_a_killed_owner(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    orphan_pid, orphan_port = orphan_server("EmbeddedPostgres", data)
    assert not gone(orphan_pid)
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{orphan_port}/stockmanager", autocommit=True
    ) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (42)")
    with EmbeddedPostgres(data) as pg:
        assert gone(orphan_pid)
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT v FROM t").fetchone() == (42,)
        pid = pg.pid
    assert pid is not None
    assert_fully_stopped(pid)


def test_postgres_long_data_dir_uses_a_short_socket_dir(tmp_path: Path) -> None:
    data = tmp_path / ("d" * 60) / ("e" * 60) / "pg"
    with EmbeddedPostgres(data) as pg:
        assert pg.socket_dir != data
        assert len(str(pg.socket_dir)) < 60
        assert (pg.socket_dir / f".s.PGSQL.{pg.port}").is_socket()
        with psycopg.connect(host=str(pg.socket_dir), port=pg.port, user="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_redis_starts_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    rd = EmbeddedRedis(data)
    url = rd.start()
    try:
        assert url == f"redis://127.0.0.1:{rd.port}/0"
        assert rd.port not in (6379, None)
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("kept", "survives a restart")
        client.xadd("events", {"type": "sale.created"})
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        first_pid = rd.pid
        assert first_pid is not None
    finally:
        rd.stop()
    assert_fully_stopped(first_pid)
    rd.stop()  # idempotent

    with EmbeddedRedis(data) as again:
        client = redis.Redis.from_url(again.url)
        assert client.get("kept") == b"survives a restart"
        assert client.xlen("events") == 1
        client.close()
        second_pid = again.pid
    assert second_pid is not None
    assert_fully_stopped(second_pid)
    assert (data / "redis.log").exists()


def test_redis_takes_over_an_orphan_and_refuses_a_second_owner(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    orphan_pid, orphan_port = orphan_server("EmbeddedRedis", data)
    client = redis.Redis(host="127.0.0.1", port=orphan_port)
    client.set("k", "v")
    client.close()
    with EmbeddedRedis(data) as rd:
        assert gone(orphan_pid)
        client = redis.Redis.from_url(rd.url)
        assert client.get("k") == b"v"  # flushed by the orphan's SIGTERM shutdown
        client.close()
        with pytest.raises(EmbeddedServerError, match="in use by another process"):
            EmbeddedRedis(data).start()
        assert rd.running
