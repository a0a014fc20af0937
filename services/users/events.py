"""Events the users service publishes (types in the kernel, payload models in
`stockmanager.contracts.events`, prose in docs/events.md), and the helper that writes them to
the outbox in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users.tables import outbox
from stockmanager.contracts.events import (
    ApplicationState,
    PasswordResetRequested,
    SettingsUpdated,
    SettingValue,
    UserSnapshot,
    UserUpdated,
)
from stockmanager.events import Event, EventType, new_event, write_event
from stockmanager.identity import Identity

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

USER = "user"


def snapshot(user: Any) -> UserSnapshot:
    """A users row (or any object with the snapshot's attributes) as events carry it."""
    return UserSnapshot.model_validate(user, from_attributes=True)


def user_created(actor: Identity, user: Any) -> Event:
    """An admin created an account."""
    return new_event(
        EventType.USER_CREATED,
        identity=actor,
        entity_type=USER,
        entity_id=user.id,
        after=snapshot(user),
    )


def user_registered(caller: Identity, user: Any) -> Event:
    return new_event(
        EventType.USER_REGISTERED,
        identity=caller,
        entity_type=USER,
        entity_id=user.id,
        after=snapshot(user),
    )


def user_updated(
    actor: Identity,
    user_id: int,
    before: Any,
    after: Any,
    *,
    changed: list[str],
    password_changed: bool,
    by_admin: bool,
) -> Event:
    return new_event(
        EventType.USER_UPDATED,
        identity=actor,
        entity_type=USER,
        entity_id=user_id,
        data=UserUpdated(
            changed=tuple(changed), password_changed=password_changed, by_admin=by_admin
        ),
        before=snapshot(before),
        after=snapshot(after),
    )


def user_disabled(actor: Identity, user_id: int, before: Any, after: Any) -> Event:
    return new_event(
        EventType.USER_DISABLED,
        identity=actor,
        entity_type=USER,
        entity_id=user_id,
        before=snapshot(before),
        after=snapshot(after),
    )


def password_changed(actor: Identity, user_id: int | None) -> Event:
    """Self-service change (`/api/settings/password`)."""
    return new_event(
        EventType.USER_PASSWORD_CHANGED, identity=actor, entity_type=USER, entity_id=user_id
    )


def password_reset_requested(caller: Identity, user_id: int | None) -> Event:
    """A reset code was asked for; `user_id` None: the e-mail is not registered."""
    return new_event(
        EventType.USER_PASSWORD_RESET_REQUESTED,
        identity=caller,
        entity_type=USER,
        entity_id=user_id,
        data=PasswordResetRequested(email_known=user_id is not None),
    )


def password_reset(caller: Identity, user_id: int) -> Event:
    """A reset completed with a verified code."""
    return new_event(
        EventType.USER_PASSWORD_RESET, identity=caller, entity_type=USER, entity_id=user_id
    )


def application_decided(
    actor: Identity, user_id: int, before: Any, after: Any, *, approve: bool
) -> Event:
    return new_event(
        EventType.APPLICATION_APPROVED if approve else EventType.APPLICATION_REJECTED,
        identity=actor,
        entity_type="application",
        entity_id=user_id,
        before=ApplicationState.model_validate(before, from_attributes=True),
        after=ApplicationState.model_validate(after, from_attributes=True),
    )


def settings_updated(actor: Identity, key: str, before: Any, after: Any) -> Event:
    return new_event(
        EventType.SETTINGS_UPDATED,
        identity=actor,
        entity_type="settings",
        entity_id=None,
        data=SettingsUpdated(key=key),
        before=SettingValue(value=before),
        after=SettingValue(value=after),
    )


async def emit(conn: AsyncConnection, event: Event) -> None:
    await write_event(conn, outbox, event)
