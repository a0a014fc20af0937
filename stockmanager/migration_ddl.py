"""DDL shared by every service's initial migration: the outbox and processed-events tables.

Kept as SQL text (not `metadata.create_all`) so that a migration, once released, never changes
when table definitions in Python evolve. Must match `stockmanager.events.outbox`.
"""

from __future__ import annotations


def event_tables_ddl(schema: str) -> str:
    return f"""
    CREATE TABLE {schema}.outbox (
        id           uuid PRIMARY KEY,
        seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        type         varchar(64) NOT NULL,
        payload      jsonb NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    );
    CREATE INDEX ix_outbox_unpublished ON {schema}.outbox (seq) WHERE published_at IS NULL;
    CREATE TABLE {schema}.processed_events (
        event_id       uuid NOT NULL,
        consumer_group varchar(64) NOT NULL,
        processed_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (event_id, consumer_group)
    );
    """
