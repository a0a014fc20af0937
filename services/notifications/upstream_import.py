"""`stockmanager import-upstream`: the notifications schema's part
(docs/upgrading-from-stockmanager.md). Runs in the import's one transaction; never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from stockmanager.upstream import staging
from stockmanager.upstream.records import NotificationRecord
from stockmanager.upstream.report import Report

SCHEMA = "notifications"
KIND = "notification"
STAGING = "upstream_notifications"


async def import_notifications(
    conn: psycopg.AsyncConnection[Any],
    source: str,
    notifications: Sequence[NotificationRecord],
    users: Mapping[int, tuple[int, str, str]],
    report: Report,
) -> None:
    """`users`: upstream user id -> (local id, username, role); every notification's user is
    there (the rules skipped the others)."""
    await staging.lock(conn, "notifications.notifications")
    await staging.stage(
        conn,
        STAGING,
        f"{staging.id_columns()}, user_id bigint, title text, message text, type text,"
        " action_url text, is_read boolean, created_at timestamptz",
        (
            (
                n.upstream_id,
                None,
                None,
                users[n.user_upstream_id][0],
                n.title,
                n.message,
                n.type,
                n.action_url,
                n.is_read,
                n.created_at,
            )
            for n in notifications
        ),
    )
    await staging.mark_already(conn, STAGING, SCHEMA, source, KIND)
    await staging.assign_ids(conn, STAGING, "notifications.notifications", report, "notifications")
    await conn.execute(
        f"""
        INSERT INTO notifications.notifications (id, user_id, title, message, type, action_url,
                                                 is_read, created_at)
        SELECT local_id, user_id, title, message, type, action_url, is_read, created_at
          FROM {STAGING} WHERE state IN ('new', 'renumbered')
        """
    )
    await staging.count_states(conn, STAGING, report, "notifications")
    await staging.record_map(conn, STAGING, SCHEMA, source, KIND)
