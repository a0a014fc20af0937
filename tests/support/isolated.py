"""Backends of their own for tests that must not share state with the rest of the suite.

Fuzzers and abuse tests fill rate-limit counters, write random data and change settings; the
session's shared stack must never see any of it. They get a fresh, migrated database on the same
PostgreSQL server and a Redis server of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the same server (dropped first if a previous run left it)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def isolated_backends(server_url: str, data_root: Path, name: str) -> Iterator[tuple[str, str]]:
    """(database URL, Redis URL): a migrated database `stockmanager_<name>` and a new Redis."""
    from stockmanager.cli import migrate
    from stockmanager.embedded import EmbeddedRedis

    database_url = fresh_database(server_url, f"stockmanager_{name}")
    migrate(database_url)
    redis_server = EmbeddedRedis(data_root / f"{name}-redis")
    redis_url = redis_server.start()
    try:
        yield database_url, redis_url
    finally:
        redis_server.stop()
