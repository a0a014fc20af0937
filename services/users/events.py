"""Events the users service publishes (types are defined in the kernel; payloads in
docs/events.md), and the helpers that write them to the outbox in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users.tables import outbox
from stockmanager.events import Event, EventType, write_event

PUBLISHED = (
    EventType.USER_CREATED,
    EventType.USER_UPDATED,
    EventType.USER_DISABLED,
    EventType.USER_REGISTERED,
    EventType.USER_PASSWORD_CHANGED,
    EventType.USER_PASSWORD_RESET_REQUESTED,
    EventType.USER_PASSWORD_RESET,
    EventType.APPLICATION_APPROVED,
    EventType.APPLICATION_REJECTED,
    EventType.SETTINGS_UPDATED,
)

SNAPSHOT_KEYS = ("id", "username", "email", "role", "status", "application")


def snapshot(user: Any) -> dict[str, Any]:
    """The user snapshot of docs/events.md: `{id, username, email, role, status, application}`."""
    return {key: getattr(user, key) for key in SNAPSHOT_KEYS}


async def emit(conn: AsyncConnection, event: Event) -> None:
    await write_event(conn, outbox, event)
