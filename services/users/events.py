"""Events the users service publishes (types are defined in the kernel)."""

from __future__ import annotations

from stockmanager.events import EventType

PUBLISHED = (
    EventType.USER_CREATED,
    EventType.USER_UPDATED,
    EventType.USER_DISABLED,
    EventType.USER_REGISTERED,
    EventType.USER_PASSWORD_CHANGED,
    EventType.USER_PASSWORD_RESET,
    EventType.APPLICATION_APPROVED,
    EventType.APPLICATION_REJECTED,
    EventType.SETTINGS_UPDATED,
)
