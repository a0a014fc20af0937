"""`stockmanager migrate --check`: exit 0 only when every service schema is at its Alembic head,
otherwise non-zero naming the schemas behind; it never migrates (pods run it as an initContainer,
so new code never serves an old schema). Against real PostgreSQL, on databases of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from stockmanager.cli import migrate, migration_order
from stockmanager.migrations import upgrade
from tests.support.isolated import fresh_database

SCHEMAS = [schema for _, schema in migration_order()]


def check(database_url: str) -> subprocess.CompletedProcess[str]:
    """The real command line, as the initContainer runs it."""
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "stockmanager", "migrate", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def existing_schemas(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {row[0] for row in rows} & set(SCHEMAS)


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    url = fresh_database(database_url, "stockmanager_migrate_check")
    yield url
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "stockmanager_migrate_check" WITH (FORCE)')


def test_every_service_has_a_schema_to_check() -> None:
    assert set(SCHEMAS) == {
        "users",
        "products",
        "sales",
        "notifications",
        "audit",
        "metrics",
        "webhooks",
    }


def test_fresh_database_fails_naming_every_schema_and_migrates_nothing(empty_database: str) -> None:
    result = check(empty_database)
    assert result.returncode != 0
    for schema in SCHEMAS:
        assert f"{schema} (none -> " in result.stderr
    assert "Run `stockmanager migrate`" in result.stderr
    assert existing_schemas(empty_database) == set()  # --check created nothing


def test_partly_migrated_names_only_the_schemas_behind(empty_database: str) -> None:
    upgrade(empty_database, [("users", "users"), ("products", "products")])
    result = check(empty_database)
    assert result.returncode != 0
    behind = SCHEMAS[2:] if SCHEMAS[:2] == ["users", "products"] else []
    assert behind, SCHEMAS
    for schema in behind:
        assert f"{schema} (none -> " in result.stderr
    assert "users (" not in result.stderr
    assert "products (" not in result.stderr
    assert existing_schemas(empty_database) == {"users", "products"}


def test_at_head_passes_and_an_older_revision_fails(empty_database: str) -> None:
    migrate(empty_database)
    result = check(empty_database)
    assert result.returncode == 0, result.stderr
    assert f"{len(SCHEMAS)} schemas at head" in result.stdout

    # One schema whose version table is behind its head (as after deploying code with a new
    # migration); emptying the version table puts it at base, whatever its head is.
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DELETE FROM sales.alembic_version")
    result = check(empty_database)
    assert result.returncode != 0
    assert "sales (none -> sales_" in result.stderr
    assert "users (" not in result.stderr
    with psycopg.connect(empty_database) as conn:
        versions = conn.execute("SELECT version_num FROM sales.alembic_version").fetchall()
    assert versions == []  # --check did not upgrade it


def test_unreachable_database_fails() -> None:
    result = check("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert result.returncode != 0
    assert "cannot read the schema versions" in result.stderr
