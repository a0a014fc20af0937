"""Events the notifications service publishes and consumes (types are defined in the kernel)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.notifications.triggers import TRIGGERS
from stockmanager.contracts.events import (
    DeletedNotification,
    NotificationChanged,
    NotificationSnapshot,
)
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity

if TYPE_CHECKING:
    from services.notifications.schemas import NewNotification

PUBLISHED = (EventType.NOTIFICATION_CREATED, EventType.NOTIFICATION_DELETED)

# The consumer group `notifications` reads only the events that notify someone.
CONSUMED: tuple[str, ...] = tuple(str(event_type) for event_type in TRIGGERS)


def notification_created(caller: Identity, notification_id: int, new: NewNotification) -> Event:
    return new_event(
        EventType.NOTIFICATION_CREATED,
        identity=caller,
        entity_type="notification",
        entity_id=notification_id,
        data=NotificationChanged(user_id=new.user_id, title=new.title, type=new.type),
        after=NotificationSnapshot(
            id=notification_id,
            user_id=new.user_id,
            title=new.title,
            message=new.message,
            type=new.type,
            action_url=new.action_url,
        ),
    )


def notification_deleted(caller: Identity, row: Any) -> Event:
    """`row`: the deleted notifications row."""
    deleted = DeletedNotification.model_validate(row, from_attributes=True)
    return new_event(
        EventType.NOTIFICATION_DELETED,
        identity=caller,
        entity_type="notification",
        entity_id=deleted.id,
        data=NotificationChanged(user_id=deleted.user_id, title=deleted.title, type=deleted.type),
        before=deleted,
    )
