"""`stockmanager import-upstream`: the users schema's part (docs/upgrading-from-stockmanager.md).

Upstream users are merged into local ones by username (case-insensitive); the rest are inserted
with their Werkzeug password hashes as they are (passwords.py verifies them and re-hashes on the
first login). Runs in the import's one transaction; never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from services.users.tables import outbox
from stockmanager.events import Event, write_events
from stockmanager.identity import ROLE_ADMIN, ROLE_ROOT
from stockmanager.upstream import staging
from stockmanager.upstream.records import Actor, UserRecord
from stockmanager.upstream.report import Report
from stockmanager.upstream.rules_users import email_with_suffix

SCHEMA = "users"
KIND = "user"
STAGING = "upstream_users"


async def importing_actor(conn: psycopg.AsyncConnection[Any]) -> Actor:
    """The import is recorded as the local root account's doing (None if there is none)."""
    cursor = await conn.execute("SELECT id, username FROM users.users WHERE role = 'root'")
    row = await cursor.fetchone()
    if row is None:
        return Actor(None, None, None)
    return Actor(int(row[0]), str(row[1]), ROLE_ROOT)


async def import_users(
    conn: psycopg.AsyncConnection[Any],
    source: str,
    users: Sequence[UserRecord],
    report: Report,
) -> dict[int, tuple[int, str, str]]:
    """Upstream user id -> (local id, username, role) for every user of the file."""
    await staging.lock(conn, "users.users")
    await staging.stage(
        conn,
        STAGING,
        f"{staging.id_columns()}, username text, email text, password_hash text, role text,"
        " status smallint, application text, created_at timestamptz",
        (
            (
                u.upstream_id,
                None,
                None,
                u.username,
                u.email,
                u.password_hash,
                u.role,
                u.status,
                u.application,
                u.created_at,
            )
            for u in users
        ),
    )
    await staging.mark_already(conn, STAGING, SCHEMA, source, KIND)
    cursor = await conn.execute(
        f"""
        UPDATE {STAGING} s SET local_id = u.id, state = 'matched'
          FROM users.users u
         WHERE s.state IS NULL AND lower(u.username) = lower(s.username)
        RETURNING s.upstream_id, s.username, u.id
        """
    )
    for upstream_id, username, local_id in sorted(await cursor.fetchall()):
        report.problem(
            "username_matched", "users", upstream_id, f"{username!r} = local #{local_id}"
        )
    cursor = await conn.execute(
        f"""
        SELECT s.upstream_id, s.email FROM {STAGING} s
         WHERE s.state IS NULL
           AND EXISTS (SELECT 1 FROM users.users u WHERE lower(u.email) = lower(s.email))
        """
    )
    for upstream_id, email in await cursor.fetchall():
        renamed = email_with_suffix(email, str(upstream_id))
        report.problem("duplicate_email", "users", upstream_id, f"{email!r} -> {renamed!r}")
        await conn.execute(
            f"UPDATE {STAGING} SET email = %s WHERE upstream_id = %s", (renamed, upstream_id)
        )
    cursor = await conn.execute(
        f"""
        UPDATE {STAGING} s SET role = %s
         WHERE s.state IS NULL AND s.role = %s
           AND EXISTS (SELECT 1 FROM users.users u WHERE u.role = %s)
        RETURNING s.upstream_id
        """,
        (ROLE_ADMIN, ROLE_ROOT, ROLE_ROOT),
    )
    for (upstream_id,) in await cursor.fetchall():
        report.problem("second_root", "users", upstream_id, "root -> admin")
    await staging.assign_ids(conn, STAGING, "users.users", report, "users")
    await conn.execute(
        f"""
        INSERT INTO users.users (id, username, email, password_hash, role, status, application,
                                 created_at, updated_at)
        SELECT local_id, username, email, password_hash, role, status, application,
               created_at, created_at
          FROM {STAGING} WHERE state IN ('new', 'renumbered')
        """
    )
    await staging.count_states(conn, STAGING, report, "users")
    await staging.record_map(conn, STAGING, SCHEMA, source, KIND)
    cursor = await conn.execute(
        f"SELECT s.upstream_id, u.id, u.username, u.role FROM {STAGING} s"
        " JOIN users.users u ON u.id = s.local_id"
    )
    return {int(r[0]): (int(r[1]), str(r[2]), str(r[3])) for r in await cursor.fetchall()}


async def write_summary(conn: psycopg.AsyncConnection[Any], event: Event) -> None:
    """The import's one summary event, in the users outbox (the root account's doing)."""
    await write_events(conn, outbox, [event])
