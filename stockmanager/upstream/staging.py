"""Staging and id assignment shared by every writer (the same steps for every table).

Rows go into a temporary table by COPY (fast: one stream instead of a statement per row), then
each writer moves them with set-based `INSERT ... SELECT`. Before that, `assign_ids` decides each
staged row's local id and state:

- `already`: imported by an earlier run (found in `<schema>.upstream_ids`): nothing is written;
- `matched`: merged into an existing local row (the writer's own rule: username, barcode);
- `new`: keeps its upstream id (not used here);
- `renumbered`: its upstream id is used here by another row: a new id from the sequence, which
  is first moved past every kept id (so it can never hand out one of them later).

The target table is locked against concurrent writers (readers go on) for the rest of the
import, so no id can be taken between the check and the insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from stockmanager.upstream.report import Report

STATES_TO_MAP = ("new", "renumbered", "matched")


async def stage(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    columns: str,
    rows: Iterable[Sequence[Any]],
    *,
    analyze: bool = True,
) -> None:
    """`CREATE TEMP TABLE name (columns)` (dropped at commit) filled by COPY; analyzed when it
    will be joined (temporary tables get no statistics otherwise)."""
    await conn.execute(f"CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP")
    async with conn.cursor().copy(f"COPY {name} FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)
    if analyze:
        await conn.execute(f"ANALYZE {name}")


def id_columns() -> str:
    """The columns `assign_ids` needs in a staging table (first in its column list)."""
    return "upstream_id bigint PRIMARY KEY, local_id bigint, state text"


async def lock(conn: psycopg.AsyncConnection[Any], table: str) -> None:
    # EXCLUSIVE: reads go on, writes wait for the import to end (ids, barcodes, usernames).
    await conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")


async def mark_already(
    conn: psycopg.AsyncConnection[Any], staging: str, schema: str, source: str, kind: str
) -> None:
    await conn.execute(
        f"""
        UPDATE {staging} s SET local_id = m.local_id, state = 'already'
          FROM {schema}.upstream_ids m
         WHERE m.source = %s AND m.kind = %s AND m.upstream_id = s.upstream_id
        """,
        (source, kind),
    )


async def assign_ids(
    conn: psycopg.AsyncConnection[Any],
    staging: str,
    table: str,
    report: Report,
    kind: str,
) -> None:
    """Give every staged row without a state a local id (`new` or `renumbered`)."""
    await conn.execute(
        f"""
        UPDATE {staging} s SET local_id = s.upstream_id, state = 'new'
         WHERE s.state IS NULL AND s.upstream_id > 0
           AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = s.upstream_id)
        """
    )
    await conn.execute(
        f"""
        SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                      greatest((SELECT max(id) FROM {table}),
                               (SELECT max(local_id) FROM {staging} WHERE state = 'new'), 1))
        """
    )
    cursor = await conn.execute(
        f"""
        UPDATE {staging} s SET local_id = nextval(pg_get_serial_sequence('{table}', 'id')),
                               state = 'renumbered'
         WHERE s.state IS NULL
        RETURNING s.upstream_id, s.local_id
        """
    )
    for upstream_id, local_id in sorted(await cursor.fetchall()):
        report.id_changed(kind, upstream_id, local_id, f"id {upstream_id} is taken here")


async def count_states(
    conn: psycopg.AsyncConnection[Any], staging: str, report: Report, kind: str
) -> None:
    counts = report.counts[kind]
    cursor = await conn.execute(f"SELECT state, count(*) FROM {staging} GROUP BY state")
    for state, count in await cursor.fetchall():
        if state == "already":
            counts.already += count
        elif state == "matched":
            counts.matched += count
        else:
            counts.imported += count


async def record_map(
    conn: psycopg.AsyncConnection[Any], staging: str, schema: str, source: str, kind: str
) -> None:
    """Remember which local row each upstream row became (the next run finds it)."""
    await conn.execute(
        f"""
        INSERT INTO {schema}.upstream_ids (source, kind, upstream_id, local_id)
        SELECT %s, %s, upstream_id, local_id FROM {staging}
         WHERE state = ANY(%s)
        """,
        (source, kind, list(STATES_TO_MAP)),
    )


async def id_map(conn: psycopg.AsyncConnection[Any], staging: str) -> dict[int, int]:
    cursor = await conn.execute(f"SELECT upstream_id, local_id FROM {staging}")
    return {int(u): int(v) for u, v in await cursor.fetchall()}
