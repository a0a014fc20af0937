"""Events the webhooks service delivers, the body receivers get, and the events it publishes.

The body (payload version 1, docs/webhooks.md):
`{"version": 1, "id", "type", "time", "entity": {type, id}, "actor": {id, username, role},
  "data", "before", "after"}`: the domain event as on the stream (`data`/`before`/`after` are
the typed payloads of stockmanager.contracts.events), without the client's IP or request id.
`id` is the event id, also sent as `webhook-id`: the receiver's idempotency key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from stockmanager.contracts.events import (
    NoData,
    WebhookDisabled,
    WebhookSecretRotated,
    WebhookSnapshot,
    WebhookUpdated,
)
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity

PAYLOAD_VERSION = 1
ALL_EVENTS = "*"
PING = "webhook.ping"

# What a subscription may ask for: the business events an integration acts on. Sign-ins,
# refused requests, password resets, debug commands and settings stay internal (audit has them).
DELIVERABLE: tuple[str, ...] = tuple(
    str(event_type)
    for event_type in (
        EventType.SALE_CREATED,
        EventType.SALE_UPDATED,
        EventType.PRODUCT_CREATED,
        EventType.PRODUCT_UPDATED,
        EventType.PRODUCT_DISABLED,
        EventType.PRODUCT_ACTIVATED,
        EventType.PRODUCT_PRICES_BULK_UPDATED,
        EventType.PRODUCT_STOCK_BULK_UPDATED,
        EventType.PRODUCTS_IMPORTED,
        EventType.STOCK_LOW,
        EventType.USER_CREATED,
        EventType.USER_UPDATED,
        EventType.USER_DISABLED,
        EventType.USER_REGISTERED,
        EventType.APPLICATION_APPROVED,
        EventType.APPLICATION_REJECTED,
    )
)

SNAPSHOT_FIELDS = ("url", "events", "description", "active")


def webhook_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "id": event.id,
        "type": event.type,
        "time": event.occurred_at,
        "entity": event.entity,
        "actor": event.actor,
        "data": event.data,
    }
    if event.before is not None:
        payload["before"] = event.before
    if event.after is not None:
        payload["after"] = event.after
    return payload


def ping_payload(subscription_id: int, caller: Identity) -> dict[str, Any]:
    """The body of `POST /api/webhooks/{id}/test`: a `webhook.ping` with a fresh id."""
    return {
        "version": PAYLOAD_VERSION,
        "id": str(uuid.uuid4()),
        "type": PING,
        "time": datetime.now(UTC).isoformat(),
        "entity": {"type": "webhook", "id": subscription_id},
        "actor": caller.actor(),
        "data": {"subscription_id": subscription_id},
    }


def snapshot(row: Any) -> WebhookSnapshot:
    return WebhookSnapshot(
        id=row.id,
        url=row.url,
        events=tuple(row.events),
        description=row.description,
        active=row.active,
    )


def webhook_created(caller: Identity, row: Any) -> Event:
    return new_event(
        EventType.WEBHOOK_CREATED,
        identity=caller,
        entity_type="webhook",
        entity_id=row.id,
        data=NoData(),
        after=snapshot(row),
    )


def webhook_updated(caller: Identity, before: Any, after: Any) -> Event | None:
    """None when nothing changed."""
    old, new = snapshot(before), snapshot(after)
    changed = tuple(key for key in SNAPSHOT_FIELDS if getattr(old, key) != getattr(new, key))
    if not changed:
        return None
    return new_event(
        EventType.WEBHOOK_UPDATED,
        identity=caller,
        entity_type="webhook",
        entity_id=after.id,
        data=WebhookUpdated(changed=changed),
        before=old,
        after=new,
    )


def webhook_deleted(caller: Identity, row: Any) -> Event:
    return new_event(
        EventType.WEBHOOK_DELETED,
        identity=caller,
        entity_type="webhook",
        entity_id=row.id,
        data=NoData(),
        before=snapshot(row),
    )


def webhook_secret_rotated(caller: Identity, subscription_id: int, until: datetime | None) -> Event:
    return new_event(
        EventType.WEBHOOK_SECRET_ROTATED,
        identity=caller,
        entity_type="webhook",
        entity_id=subscription_id,
        data=WebhookSecretRotated(previous_valid_until=until.isoformat() if until else None),
    )


def webhook_disabled(before: Any, after: Any, last_error: str | None) -> Event:
    """Written by the delivery worker (no user acted: the actor is null)."""
    return new_event(
        EventType.WEBHOOK_DISABLED,
        identity=None,
        entity_type="webhook",
        entity_id=after.id,
        data=WebhookDisabled(
            subscription_id=after.id,
            url=after.url,
            consecutive_failures=after.consecutive_failures,
            last_error=last_error,
        ),
        before=snapshot(before),
        after=snapshot(after),
    )
