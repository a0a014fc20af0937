"""Rules of the webhooks service. Never commits: the request or consumer boundary does."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncConnection

from services.webhooks import repository, schemas
from services.webhooks.events import (
    ALL_EVENTS,
    PING,
    ping_payload,
    webhook_created,
    webhook_deleted,
    webhook_payload,
    webhook_secret_rotated,
    webhook_updated,
)
from services.webhooks.settings import WebhooksSettings
from services.webhooks.signing import new_secret
from services.webhooks.tables import outbox
from services.webhooks.targets import TargetRefused, check_target
from stockmanager.contracts.fields import BIGINT_MAX
from stockmanager.errors import Conflict, NotFound, ValidationFailed
from stockmanager.events import Event, write_event
from stockmanager.http import dumps
from stockmanager.identity import Identity
from stockmanager.pagination import Page

NOT_FOUND = "Webhook no encontrado"
DELIVERY_NOT_FOUND = "Entrega no encontrada"
INACTIVE = "El webhook está inactivo: actívalo antes de probarlo"


@dataclass(frozen=True, slots=True)
class Handover:
    """Deliveries the consumer wrote leased to its process's worker (to give it once
    committed), when their leases end (time.monotonic()), and how many it wrote unleased."""

    leased: Sequence[Any]
    lease_ends: float
    unleased: int


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules need besides the connection."""

    settings: WebhooksSettings
    cipher: Fernet


async def _checked_url(ctx: Context, url: str) -> str:
    try:
        return await check_target(url, allow_private=ctx.settings.webhooks_allow_private_targets)
    except TargetRefused as exc:
        raise ValidationFailed(str(exc), field="url") from exc


async def _existing(conn: AsyncConnection, subscription_id: int, *, lock: bool = False) -> Any:
    row = None
    if subscription_id <= BIGINT_MAX:
        row = await repository.get_subscription(conn, subscription_id, lock=lock)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


async def create(
    conn: AsyncConnection, ctx: Context, caller: Identity, new: schemas.NewWebhook
) -> dict[str, Any]:
    url = await _checked_url(ctx, new.url)
    secret = new_secret()
    row = await repository.insert_subscription(
        conn,
        {
            "url": url,
            "events": list(new.events),
            "description": new.description,
            "active": new.active,
            "secret_encrypted": ctx.cipher.encrypt(secret.encode()).decode(),
            "created_by": caller.user_id,
        },
    )
    await write_event(conn, outbox, webhook_created(caller, row))
    return {**schemas.webhook_item(row), "secret": secret}


async def get(conn: AsyncConnection, subscription_id: int) -> dict[str, Any]:
    return schemas.webhook_item(await _existing(conn, subscription_id))


async def list_page(conn: AsyncConnection, page: Page) -> dict[str, Any]:
    rows, total = await repository.list_subscriptions(conn, offset=page.offset, limit=page.limit)
    return page.envelope([schemas.webhook_item(row) for row in rows], total)


async def update(
    conn: AsyncConnection,
    ctx: Context,
    caller: Identity,
    subscription_id: int,
    changes: schemas.WebhookChanges,
) -> dict[str, Any]:
    before = await _existing(conn, subscription_id, lock=True)
    values: dict[str, Any] = {}
    if changes.url is not None and changes.url != before.url:
        values["url"] = await _checked_url(ctx, changes.url)
    if changes.events is not None:
        values["events"] = list(changes.events)
    if changes.description is not None:
        values["description"] = changes.description
    if changes.active is not None:
        values["active"] = changes.active
        if changes.active:
            # Switched on (again): a fresh start, whatever made it fail before.
            values.update(consecutive_failures=0, failing_since=None, disabled_reason=None)
    if not values:
        return schemas.webhook_item(before)
    after = await repository.update_subscription(conn, subscription_id, values)
    event = webhook_updated(caller, before, after)
    if event is not None:
        await write_event(conn, outbox, event)
    return schemas.webhook_item(after)


async def delete(conn: AsyncConnection, caller: Identity, subscription_id: int) -> None:
    await _existing(conn, subscription_id)
    row = await repository.delete_subscription(conn, subscription_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    await write_event(conn, outbox, webhook_deleted(caller, row))


async def rotate_secret(
    conn: AsyncConnection,
    ctx: Context,
    caller: Identity,
    subscription_id: int,
    body: schemas.RotateSecret | None,
) -> dict[str, Any]:
    row = await _existing(conn, subscription_id, lock=True)
    grace = ctx.settings.webhooks_rotation_grace_seconds
    if body is not None and body.grace_seconds is not None:
        grace = body.grace_seconds
    until = datetime.now(UTC) + timedelta(seconds=grace) if grace > 0 else None
    secret = new_secret()
    await repository.update_subscription(
        conn,
        subscription_id,
        {
            "secret_encrypted": ctx.cipher.encrypt(secret.encode()).decode(),
            # Only the secret in use moves to "previous": one older still in its grace
            # period ends now (a receiver updating to the newest keeps working).
            "previous_secret_encrypted": row.secret_encrypted if until else None,
            "previous_secret_expires_at": until,
        },
    )
    await write_event(conn, outbox, webhook_secret_rotated(caller, subscription_id, until))
    return {"secret": secret, "previous_secret_expires_at": until.isoformat() if until else None}


async def send_test(
    conn: AsyncConnection, ctx: Context, caller: Identity, subscription_id: int
) -> int:
    row = await _existing(conn, subscription_id)
    if not row.active:
        raise Conflict(INACTIVE)
    payload = ping_payload(subscription_id, caller)
    return await repository.insert_delivery(
        conn,
        subscription_id=subscription_id,
        event_id=payload["id"],
        event_type=PING,
        body=dumps(payload).decode(),
        window_seconds=ctx.settings.webhooks_retry_window_seconds,
    )


async def deliveries_page(
    conn: AsyncConnection,
    subscription_id: int,
    page: Page,
    *,
    status: str | None,
    event_type: str | None,
) -> dict[str, Any]:
    await _existing(conn, subscription_id)
    rows, total = await repository.list_deliveries(
        conn,
        subscription_id,
        status=status,
        event_type=event_type,
        offset=page.offset,
        limit=page.limit,
    )
    return page.envelope([schemas.delivery_item(row) for row in rows], total)


async def redeliver(
    conn: AsyncConnection, ctx: Context, subscription_id: int, delivery_id: int
) -> int:
    await _existing(conn, subscription_id)
    row = None
    if delivery_id <= BIGINT_MAX:
        row = await repository.redeliver(
            conn, subscription_id, delivery_id, ctx.settings.webhooks_retry_window_seconds
        )
    if row is None:
        raise NotFound(DELIVERY_NOT_FOUND)
    return int(row.id)


async def wanted_types(conn: AsyncConnection) -> frozenset[str] | None:
    """What the consumer must turn into deliveries now (None: every deliverable type)."""
    wanted = await repository.wanted_types(conn)
    return None if ALL_EVENTS in wanted else frozenset(wanted)


async def deliveries_for_events(
    conn: AsyncConnection,
    settings: WebhooksSettings,
    events: list[Event],
    *,
    busy: Mapping[int, int],
    per_subscription: int,
    total: int,
) -> Handover:
    """The consumer's batch handler: one pending delivery per (event, active subscription that
    wants it), for the whole batch in one statement; as many as the local worker can take
    (`busy`, `per_subscription`, `total`: DeliveryWorker.room) are leased to it."""
    lease = settings.webhooks_lease_seconds
    started = time.monotonic()  # before the statement, from whose start the leases count
    rows = await repository.fan_out(
        conn,
        dumps([webhook_payload(e) for e in events]).decode(),
        all_events=ALL_EVENTS,
        window_seconds=settings.webhooks_retry_window_seconds,
        lease_seconds=lease,
        per_subscription=per_subscription,
        total=total,
        busy=busy,
    )
    leased = [row for row in rows if row.leased]
    return Handover(leased, started + lease, unleased=len(rows) - len(leased))
