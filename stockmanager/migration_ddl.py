"""DDL shared by every service's initial migration: the outbox and processed-events tables.

Kept as SQL text (not `metadata.create_all`) so that a migration, once released, never changes
when table definitions in Python evolve. Must match `stockmanager.events.outbox`.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


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


def upstream_ids_ddl(schema: str) -> str:
    """Where `stockmanager import-upstream` records which upstream row became which local row.

    One table per schema (each service owns its rows): `source` names the upstream database
    (stockmanager.upstream.source_id), `kind` the upstream table. A second import of the same
    database finds every row here and writes nothing twice.
    """
    return f"""
    CREATE TABLE {schema}.upstream_ids (
        source      varchar(64) NOT NULL,
        kind        varchar(20) NOT NULL,
        upstream_id bigint      NOT NULL,
        local_id    bigint      NOT NULL,
        imported_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, kind, upstream_id)
    );
    """


def unicode_fold_expression(bind: Connection) -> str:
    """Unicode case folding that does not depend on the database's locale.

    The embedded server is initialised with C.UTF-8 (or plain C), where `lower()` may only fold
    ASCII, so an explicit collation is chosen: PostgreSQL 18's `casefold` with the builtin
    `pg_unicode_fast` (full folding, `ß` = `ss`), else PostgreSQL 17's `pg_c_utf8`, else ICU's
    root locale, else the database default.
    """
    collations = set(
        bind.execute(
            text(
                "SELECT collname FROM pg_collation"
                " WHERE collname IN ('pg_unicode_fast', 'pg_c_utf8', 'und-x-icu')"
            )
        ).scalars()
    )
    has_casefold = bool(
        bind.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'casefold'")).scalar()
    )
    if "pg_unicode_fast" in collations and has_casefold:
        return "casefold(value COLLATE pg_unicode_fast)"
    if "pg_c_utf8" in collations:
        return "lower(value COLLATE pg_c_utf8)"
    if "und-x-icu" in collations:
        return 'lower(value COLLATE "und-x-icu")'
    return "lower(value)"
