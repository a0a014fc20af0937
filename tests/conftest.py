"""Shared fixtures: real PostgreSQL and Redis for every test.

By default the suite starts its own embedded PostgreSQL and Redis (from Python packages) in a
temporary directory, so it needs nothing installed on the machine. Set DATABASE_URL and/or
REDIS_URL to run against other servers instead (e.g. the system services, for compatibility).
The whole-system stack (gateway + services as real processes) is started once per session,
lazily, by the first test that asks for it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from stockmanager.db import Database
from tests.support.stack import Stack, start_stack


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stockmanager-test")


@pytest.fixture(scope="session")
def database_url(data_root: Path) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    from stockmanager.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(data_root / "postgres")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(data_root: Path) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    from stockmanager.embedded import EmbeddedRedis

    server = EmbeddedRedis(data_root / "redis")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated(database_url: str) -> str:
    from stockmanager.cli import migrate

    migrate(database_url)
    return database_url


@pytest_asyncio.fixture(scope="session")
async def db(migrated: str) -> AsyncIterator[Database]:
    database = Database(migrated, pool_size=4, max_overflow=4)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=10)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def stack(migrated: str, redis_url: str, data_root: Path) -> Iterator[Stack]:
    """The whole system as real processes, talking through the gateway."""
    with start_stack(database_url=migrated, redis_url=redis_url, log_dir=data_root) as running:
        yield running
