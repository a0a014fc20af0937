"""The one envelope every event uses, and the catalogue of event types.

Producers and consumers share these definitions; a consumer dispatches on `Event.type`. The
payload models of each type are in `stockmanager.contracts.events`.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

import orjson
from pydantic import BaseModel

from stockmanager.identity import Identity


class EventType(StrEnum):
    # gateway
    LOGIN_SUCCEEDED = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGOUT = "auth.logout"
    REQUEST_REFUSED = "request.refused"
    # products
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_DISABLED = "product.disabled"
    PRODUCT_ACTIVATED = "product.activated"
    PRODUCT_PRICES_BULK_UPDATED = "product.prices_bulk_updated"
    PRODUCT_STOCK_BULK_UPDATED = "product.stock_bulk_updated"
    PRODUCTS_IMPORTED = "product.imported"
    STOCK_LOW = "product.stock_low"
    # sales
    SALE_CREATED = "sale.created"
    SALE_UPDATED = "sale.updated"
    # users
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DISABLED = "user.disabled"
    USER_REGISTERED = "user.registered"
    USER_PASSWORD_CHANGED = "user.password_changed"
    USER_PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
    USER_PASSWORD_RESET = "user.password_reset"
    APPLICATION_APPROVED = "application.approved"
    APPLICATION_REJECTED = "application.rejected"
    SETTINGS_UPDATED = "settings.updated"
    # notifications
    NOTIFICATION_CREATED = "notification.created"
    NOTIFICATION_DELETED = "notification.deleted"
    # webhooks
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    WEBHOOK_DISABLED = "webhook.disabled"  # disabled automatically after repeated failures
    # debug
    DEBUG_COMMAND_RUN = "debug.command"
    # `stockmanager import-upstream`: one summary event per import that brought anything over
    UPSTREAM_IMPORTED = "upstream.imported"


M = TypeVar("M", bound=BaseModel)


@runtime_checkable
class WirePayload(Protocol):
    """A typed payload (`stockmanager.contracts.events.Payload`): its JSON object."""

    def wire(self) -> dict[str, Any]: ...


PayloadArg = dict[str, Any] | WirePayload | None


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    occurred_at: str
    actor: dict[str, Any]
    ip: str | None
    request_id: str | None
    entity: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    status: str = "success"

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return cls(**orjson.loads(raw))

    # Typed reads; each raises pydantic.ValidationError (a ValueError) when the part does not
    # match the model.
    def data_as(self, model: builtins.type[M]) -> M:
        return model.model_validate(self.data)

    def before_as(self, model: builtins.type[M]) -> M:
        return model.model_validate(self.before)

    def after_as(self, model: builtins.type[M]) -> M:
        return model.model_validate(self.after)


def new_event(
    event_type: EventType | str,
    *,
    identity: Identity | None,
    entity_type: str,
    entity_id: int | str | None,
    data: PayloadArg = None,
    before: PayloadArg = None,
    after: PayloadArg = None,
    status: str = "success",
) -> Event:
    return Event(
        id=str(uuid.uuid4()),
        type=str(event_type),
        occurred_at=datetime.now(UTC).isoformat(),
        actor=identity.actor() if identity else {"id": None, "username": None, "role": None},
        ip=identity.ip if identity else None,
        request_id=identity.request_id if identity else None,
        entity={"type": entity_type, "id": entity_id},
        data=_wire(data) or {},
        before=_wire(before),
        after=_wire(after),
        status=status,
    )


def _wire(payload: PayloadArg) -> dict[str, Any] | None:
    # A plain dict (or anything else a test or an old caller passes) is kept as given. The
    # cheap checks first: isinstance() against a runtime-checkable Protocol inspects the
    # class's attributes each time (visible in the sales checkout's profile).
    if payload is None or type(payload) is dict:
        return payload
    return payload.wire() if isinstance(payload, WirePayload) else payload
