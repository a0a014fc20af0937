"""Per-service Alembic migrations: each service schema has its own version table.

`upgrade()` runs every service's migrations in dependency order under a PostgreSQL
advisory lock, so several migrators (a Kubernetes Job and a developer, two `up`s) never race.
`behind()` only reads: which schemas are not at their Alembic head (`stockmanager migrate
--check`, the pods' initContainer), so new code never serves an old schema.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from stockmanager.settings import sqlalchemy_url

_LOCK_KEY = 7_403_551_208  # arbitrary constant: "stockmanager migrations"


def migrations_dir(service: str) -> Path:
    return Path(str(importlib.resources.files(f"services.{service}") / "migrations"))


def _config(service: str, schema: str, connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(database_url: str, services: Sequence[tuple[str, str]], revision: str = "head") -> None:
    """Upgrade each `(service, schema)` to `revision`, in the given order."""
    engine = create_engine(sqlalchemy_url(database_url), future=True)
    try:
        with engine.connect() as conn:
            # Session-level lock: it outlives the per-migration transactions below.
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            conn.commit()
            try:
                for service, schema in services:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    conn.commit()
                    command.upgrade(_config(service, schema, conn), revision)
                    conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def behind(database_url: str, services: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The `(service, schema)`s not at their head, as `{schema: "current -> head"}`; empty when
    every schema is current. Reads the version tables only: never migrates, takes no lock."""
    engine = create_engine(sqlalchemy_url(database_url), future=True)
    result: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            for service, schema in services:
                heads = set(ScriptDirectory.from_config(_config(service, schema, conn)).get_heads())
                exists = conn.execute(
                    text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
                ).first()
                current: set[str] = set()
                if exists is not None:
                    migration = MigrationContext.configure(
                        conn, opts={"version_table_schema": schema}
                    )
                    current = set(migration.get_current_heads())
                conn.rollback()
                if current != heads:
                    now = ", ".join(sorted(current)) or "none"
                    result[schema] = f"{now} -> {', '.join(sorted(heads))}"
    finally:
        engine.dispose()
    return result


def run_migrations_online() -> None:
    """Body of every service's `migrations/env.py`."""
    config = context.config
    connection: Connection = config.attributes["connection"]
    schema: str = config.attributes["schema"]
    context.configure(
        connection=connection,
        version_table_schema=schema,
        include_schemas=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
