"""The event payload contracts: one model per part of every event type, producers that write
exactly today's JSON through them, and a consumer that dead-letters a payload that does not match.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import pytest_asyncio
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifications import events as notification_events
from services.products import events as product_events
from services.sales import events as sale_events
from services.sales.model import Sale, SaleLine
from services.users import events as user_events
from stockmanager.contracts.events import (
    CONTRACTS,
    DebugCommand,
    LoginFailed,
    RequestRefused,
    SaleCreated,
    SaleSummary,
    StockLow,
    contract_for,
    payload_for,
)
from stockmanager.db import Database
from stockmanager.events import Event, EventType, new_event
from stockmanager.events.consumer import EventConsumer
from stockmanager.events.outbox import processed_events_table
from stockmanager.identity import Identity
from stockmanager.migration_ddl import event_tables_ddl

ADMIN = Identity(
    user_id=7, username="ana", role="admin", request_id="r-1", ip="203.0.113.5", issued_at=0.0
)

# Today's payloads (docs/events.md), as literal JSON: what every consumer and test relies on.
PRODUCT = {
    "id": 12,
    "barcode": "779123",
    "name": "Yerba 1kg",
    "description": "",
    "price": 1234.5,
    "quantity": 10,
    "min_quantity": 5,
    "status": 1,
    "expiration_date": "2027-01-31",
}
DISABLED_PRODUCT = {**PRODUCT, "status": 0, "barcode": None, "expiration_date": None}
LINES = [
    {"item_id": 1, "name": "Leche", "quantity": 7, "unit_price": 1.1, "subtotal": 7.7},
    {"item_id": 2, "name": "Pan", "quantity": 1, "unit_price": 2.25, "subtotal": 2.25},
]
SALE = {
    "sale_id": 40,
    "vendor_id": 7,
    "vendor_username": "ana",
    "payment_method": "Tarjeta",
    "total": 9.95,
    "items": LINES,
}
USER = {
    "id": 9,
    "username": "bob",
    "email": "bob@x.test",
    "role": "vendedor",
    "status": 1,
    "application": "accepted",
}
NOTIFICATION = {
    "id": 3,
    "user_id": 9,
    "title": "Hola",
    "message": "Texto",
    "type": "info",
    "action_url": None,
}
WEBHOOK = {
    "id": 4,
    "url": "https://erp.example/hooks",
    "events": ["sale.created", "product.stock_low"],
    "description": "ERP",
    "active": True,
}

# type -> (data, before, after)
SAMPLES: dict[EventType, tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]] = {
    EventType.LOGIN_SUCCEEDED: ({}, None, None),
    EventType.LOGIN_FAILED: ({"username": "mallory", "reason": "invalid_credentials"}, None, None),
    EventType.LOGOUT: ({}, None, None),
    EventType.REQUEST_REFUSED: (
        {"method": "DELETE", "path": "/api/products/12", "http_status": 403, "service": "products"},
        None,
        None,
    ),
    EventType.DEBUG_COMMAND_RUN: ({"command": "health"}, None, None),
    EventType.UPSTREAM_IMPORTED: (
        {
            "source": "sm-0123456789abcdef01234567",
            "fingerprint": "ab" * 32,
            "generation": "older (unique usernames)",
            "counts": {
                "users": {"read": 3, "imported": 2, "matched": 1, "already": 0, "skipped": 0}
            },
            "problems": {"duplicate_email": 1},
            "ids_not_kept": 0,
        },
        None,
        None,
    ),
    EventType.PRODUCT_CREATED: ({"product": PRODUCT}, None, PRODUCT),
    EventType.PRODUCT_UPDATED: (
        {"changed": ["name", "price"]},
        PRODUCT,
        {**PRODUCT, "name": "Yerba 2kg", "price": 1300.0},
    ),
    EventType.PRODUCT_DISABLED: ({"name": "Yerba 1kg"}, PRODUCT, {**PRODUCT, "status": 0}),
    EventType.PRODUCT_ACTIVATED: ({"name": "Yerba 1kg"}, DISABLED_PRODUCT, PRODUCT),
    EventType.PRODUCT_PRICES_BULK_UPDATED: (
        {"products": [{"id": 1, "name": "A", "old_price": 10.0, "new_price": 12.5}]},
        None,
        None,
    ),
    EventType.PRODUCT_STOCK_BULK_UPDATED: (
        {"products": [{"id": 3, "name": "C", "old_stock": 4, "new_stock": 9}]},
        None,
        None,
    ),
    EventType.PRODUCTS_IMPORTED: ({"created": 2, "updated": 1, "skipped": 0}, None, None),
    EventType.STOCK_LOW: (
        {"item_id": 12, "name": "Yerba 1kg", "quantity": 3, "min_quantity": 5, "notify_user_id": 7},
        None,
        None,
    ),
    EventType.SALE_CREATED: (SALE, None, SALE),
    EventType.SALE_UPDATED: (
        {"sale_id": 40},
        {k: SALE[k] for k in ("vendor_id", "payment_method", "total", "items")},
        {"vendor_id": 8, "payment_method": "Efectivo", "total": 7.7, "items": LINES[:1]},
    ),
    EventType.USER_CREATED: ({}, None, USER),
    EventType.USER_UPDATED: (
        {"changed": ["role"], "password_changed": False, "by_admin": True},
        USER,
        {**USER, "role": "admin"},
    ),
    EventType.USER_DISABLED: ({}, USER, {**USER, "status": 0}),
    EventType.USER_REGISTERED: ({}, None, {**USER, "status": 0, "application": "pending"}),
    EventType.USER_PASSWORD_CHANGED: ({}, None, None),
    EventType.USER_PASSWORD_RESET_REQUESTED: ({"email_known": False}, None, None),
    EventType.USER_PASSWORD_RESET: ({}, None, None),
    EventType.APPLICATION_APPROVED: (
        {},
        {"status": 0, "application": "pending"},
        {"status": 1, "application": "accepted"},
    ),
    EventType.APPLICATION_REJECTED: (
        {},
        {"status": 0, "application": "pending"},
        {"status": 0, "application": "rejected"},
    ),
    EventType.SETTINGS_UPDATED: ({"key": "low_stock_threshold"}, {"value": 5}, {"value": 8}),
    EventType.NOTIFICATION_CREATED: (
        {"user_id": 9, "title": "Hola", "type": "info"},
        None,
        NOTIFICATION,
    ),
    EventType.NOTIFICATION_DELETED: (
        {"user_id": 9, "title": "Hola", "type": "info"},
        {**NOTIFICATION, "is_read": True},
        None,
    ),
    EventType.WEBHOOK_CREATED: ({}, None, WEBHOOK),
    EventType.WEBHOOK_UPDATED: (
        {"changed": ["active"]},
        WEBHOOK,
        {**WEBHOOK, "active": False},
    ),
    EventType.WEBHOOK_DELETED: ({}, WEBHOOK, None),
    EventType.WEBHOOK_SECRET_ROTATED: (
        {"previous_valid_until": "2026-12-08T18:00:00+00:00"},
        None,
        None,
    ),
    EventType.WEBHOOK_DISABLED: (
        {
            "subscription_id": 4,
            "url": "https://erp.example/hooks",
            "consecutive_failures": 20,
            "last_error": "HTTP 503",
        },
        WEBHOOK,
        {**WEBHOOK, "active": False},
    ),
}


def sample_event(event_type: EventType) -> Event:
    data, before, after = SAMPLES[event_type]
    return new_event(
        event_type,
        identity=ADMIN,
        entity_type="x",
        entity_id=1,
        data=data,
        before=before,
        after=after,
    )


def as_json(value: Any) -> Any:
    """What a consumer reads back from the stream."""
    return orjson.loads(orjson.dumps(value))


def test_every_event_type_has_a_contract_and_a_sample() -> None:
    assert set(CONTRACTS) == set(EventType)
    assert set(SAMPLES) == set(EventType)


@pytest.mark.parametrize("event_type", list(EventType))
def test_a_sample_payload_round_trips_to_the_same_json(event_type: EventType) -> None:
    event = sample_event(event_type)
    typed = payload_for(event)
    assert typed is not None
    data, before, after = SAMPLES[event_type]
    assert as_json(typed.data.wire()) == data
    assert (as_json(typed.before.wire()) if typed.before else None) == before
    assert (as_json(typed.after.wire()) if typed.after else None) == after
    # And the typed model given to new_event writes the same envelope.
    rebuilt = new_event(
        event_type,
        identity=ADMIN,
        entity_type="x",
        entity_id=1,
        data=typed.data,
        before=typed.before,
        after=typed.after,
    )
    assert as_json(rebuilt.data) == data
    assert (rebuilt.before, rebuilt.after) == (before, after)


def test_unknown_types_have_no_contract() -> None:
    assert contract_for("product.archived") is None
    odd = new_event("product.archived", identity=None, entity_type="product", entity_id=1)
    assert payload_for(odd) is None


def test_payloads_that_do_not_match_raise_and_unknown_keys_are_ignored() -> None:
    missing_total = {k: v for k, v in SALE.items() if k != "total"}
    with pytest.raises(ValidationError):
        SaleCreated.model_validate(missing_total)
    with pytest.raises(ValidationError):
        StockLow.model_validate({**SAMPLES[EventType.STOCK_LOW][0], "quantity": "many"})
    with pytest.raises(ValueError):  # a type without snapshots that carries one
        payload_for(
            new_event(EventType.LOGOUT, identity=ADMIN, entity_type="user", entity_id=7, after=USER)
        )
    newer = {**SAMPLES[EventType.LOGIN_FAILED][0], "password": "never-read"}
    assert LoginFailed.model_validate(newer).wire() == SAMPLES[EventType.LOGIN_FAILED][0]
    # The notifications consumer relies on a sale's summary only; the producer writes it all.
    summary = SaleSummary.model_validate(
        {"sale_id": 1, "vendor_id": 2, "items": [{"item_id": 3, "name": "Pan", "quantity": 5}]}
    )
    assert [(item.name, item.quantity) for item in summary.items] == [("Pan", 5)]


def test_optional_keys_are_written_only_when_set() -> None:
    assert DebugCommand(command="health").wire() == {"command": "health"}
    assert DebugCommand(command=None, refused=True).wire() == {"command": None, "refused": True}
    refused = RequestRefused(method="POST", path="/api/x", http_status=403, service="products")
    assert refused.wire() == {
        "method": "POST",
        "path": "/api/x",
        "http_status": 403,
        "service": "products",
    }


# --- the producers write today's JSON -----------------------------------------------------------


def parts(event: Event) -> tuple[Any, Any, Any]:
    return as_json(event.data), as_json(event.before), as_json(event.after)


def test_product_producers() -> None:
    data, before, after = SAMPLES[EventType.PRODUCT_UPDATED]
    assert parts(product_events.created(ADMIN, PRODUCT)) == ({"product": PRODUCT}, None, PRODUCT)
    assert parts(product_events.updated(ADMIN, before or {}, after or {}, ["name", "price"])) == (
        data,
        before,
        after,
    )
    disabled = product_events.status_changed(ADMIN, PRODUCT, {**PRODUCT, "status": 0})
    assert disabled.type == EventType.PRODUCT_DISABLED
    assert parts(disabled) == SAMPLES[EventType.PRODUCT_DISABLED]
    activated = product_events.status_changed(ADMIN, DISABLED_PRODUCT, PRODUCT)
    assert activated.type == EventType.PRODUCT_ACTIVATED
    assert parts(activated) == SAMPLES[EventType.PRODUCT_ACTIVATED]
    prices = SAMPLES[EventType.PRODUCT_PRICES_BULK_UPDATED][0]["products"]
    assert (
        parts(product_events.prices_bulk_updated(ADMIN, prices))
        == (SAMPLES[EventType.PRODUCT_PRICES_BULK_UPDATED])
    )
    stock = SAMPLES[EventType.PRODUCT_STOCK_BULK_UPDATED][0]["products"]
    assert (
        parts(product_events.stock_bulk_updated(ADMIN, stock))
        == (SAMPLES[EventType.PRODUCT_STOCK_BULK_UPDATED])
    )
    imported = product_events.imported(ADMIN, created=2, updated=1, skipped=0)
    assert parts(imported) == SAMPLES[EventType.PRODUCTS_IMPORTED]
    low = product_events.stock_low(ADMIN, item_id=12, name="Yerba 1kg", quantity=3, min_quantity=5)
    assert parts(low) == SAMPLES[EventType.STOCK_LOW]


def a_sale(vendor_id: int, payment_method: str, lines: list[dict[str, Any]]) -> Sale:
    return Sale(
        id=40,
        sold_at=datetime(2026, 12, 7, tzinfo=UTC),
        vendor_id=vendor_id,
        vendor_username="ana",
        payment_method=payment_method,
        lines=tuple(
            SaleLine(
                item_id=line["item_id"],
                name=line["name"],
                quantity=line["quantity"],
                unit_price=Decimal(str(line["unit_price"])),
            )
            for line in lines
        ),
    )


def test_sale_producers() -> None:
    before = a_sale(7, "Tarjeta", LINES)
    assert parts(sale_events.sale_created(before, ADMIN)) == SAMPLES[EventType.SALE_CREATED]
    after = a_sale(8, "Efectivo", LINES[:1])
    assert parts(sale_events.sale_updated(before, after, ADMIN)) == SAMPLES[EventType.SALE_UPDATED]
    crossed = SimpleNamespace(
        item_id=12, name="Yerba 1kg", quantity_after=3, min_quantity=5, status=1, crossed_low=True
    )
    # The stock function's `crossed_low` already applies the one rule (active products only,
    # stockmanager/contracts/stock.py); the producer publishes exactly the rows it flags.
    not_crossed = SimpleNamespace(**{**vars(crossed), "crossed_low": False})
    [low] = sale_events.stock_low([crossed, not_crossed], ADMIN)
    assert parts(low) == SAMPLES[EventType.STOCK_LOW]


def test_user_producers() -> None:
    row = SimpleNamespace(**USER, password_hash="$argon2id$...")
    disabled = SimpleNamespace(**{**USER, "status": 0})
    assert parts(user_events.user_created(ADMIN, row)) == SAMPLES[EventType.USER_CREATED]
    registered = SimpleNamespace(**{**USER, "status": 0, "application": "pending"})
    assert (
        parts(user_events.user_registered(ADMIN, registered))
        == (SAMPLES[EventType.USER_REGISTERED])
    )
    promoted = SimpleNamespace(**{**USER, "role": "admin"})
    updated = user_events.user_updated(
        ADMIN, 9, row, promoted, changed=["role"], password_changed=False, by_admin=True
    )
    assert parts(updated) == SAMPLES[EventType.USER_UPDATED]
    assert (
        parts(user_events.user_disabled(ADMIN, 9, row, disabled))
        == (SAMPLES[EventType.USER_DISABLED])
    )
    assert parts(user_events.password_changed(ADMIN, 9)) == ({}, None, None)
    assert parts(user_events.password_reset(ADMIN, 9)) == ({}, None, None)
    unknown = user_events.password_reset_requested(ADMIN, None)
    assert parts(unknown) == SAMPLES[EventType.USER_PASSWORD_RESET_REQUESTED]
    assert unknown.entity == {"type": "user", "id": None}
    assert user_events.password_reset_requested(ADMIN, 9).data == {"email_known": True}
    pending = SimpleNamespace(status=0, application="pending")
    approved = user_events.application_decided(
        ADMIN, 9, pending, SimpleNamespace(status=1, application="accepted"), approve=True
    )
    assert approved.type == EventType.APPLICATION_APPROVED
    assert parts(approved) == SAMPLES[EventType.APPLICATION_APPROVED]
    rejected = user_events.application_decided(
        ADMIN, 9, pending, SimpleNamespace(status=0, application="rejected"), approve=False
    )
    assert rejected.type == EventType.APPLICATION_REJECTED
    assert parts(rejected) == SAMPLES[EventType.APPLICATION_REJECTED]
    settings = user_events.settings_updated(ADMIN, "low_stock_threshold", 5, 8)
    assert parts(settings) == SAMPLES[EventType.SETTINGS_UPDATED]
    assert settings.entity == {"type": "settings", "id": None}


def test_notification_producers() -> None:
    new = SimpleNamespace(user_id=9, title="Hola", message="Texto", type="info", action_url=None)
    created = notification_events.notification_created(ADMIN, 3, new)  # type: ignore[arg-type]
    assert parts(created) == SAMPLES[EventType.NOTIFICATION_CREATED]
    row = SimpleNamespace(**NOTIFICATION, is_read=True, created_at=datetime.now(UTC))
    deleted = notification_events.notification_deleted(ADMIN, row)
    assert parts(deleted) == SAMPLES[EventType.NOTIFICATION_DELETED]
    assert deleted.entity == {"type": "notification", "id": 3}


# --- a consumer and a payload that does not match ----------------------------------------------

SCHEMA = "contracts_test"


@pytest_asyncio.fixture(scope="module")
async def processed(db: Database) -> AsyncIterator[MetaData]:
    async with db.transaction() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        for statement in event_tables_ddl(SCHEMA).split(";"):
            if statement.strip():
                await conn.execute(text(statement))
    metadata = MetaData(schema=SCHEMA)
    processed_events_table(metadata)
    yield metadata


async def test_a_payload_that_does_not_match_is_dead_lettered_at_once(
    db: Database, redis: Redis, processed: MetaData
) -> None:
    stream = f"contracts-{uuid.uuid4().hex}"
    applied: list[int] = []

    async def handle(conn: AsyncConnection, event: Event) -> None:
        applied.append(event.data_as(StockLow).item_id)

    consumer = EventConsumer(
        redis,
        stream=stream,
        group="contracts",
        db=db,
        processed=processed.tables[f"{SCHEMA}.processed_events"],
        handler=handle,
        max_attempts=10,
    )
    await consumer.ensure_group()
    good = sample_event(EventType.STOCK_LOW)
    bad = new_event(
        EventType.STOCK_LOW, identity=ADMIN, entity_type="product", entity_id=5, data={"item_id": 5}
    )
    for event in (bad, good):
        await redis.xadd(stream, {"event": event.to_json()})
    response: Any = await redis.xreadgroup("contracts", "c1", {stream: ">"}, count=10)
    [(_, messages)] = response
    await consumer.process_batch(messages)

    assert applied == [12]  # the good one, once (the batch was retried one by one)
    dead: Any = await redis.xrange(f"{stream}:dead")
    assert [Event.from_json(fields[b"event"]).id for _, fields in dead] == [bad.id]
    pending: Any = await redis.xpending(stream, "contracts")
    assert pending["pending"] == 0  # nothing left to retry
