"""Events the products service publishes (types in the kernel, payloads per docs/events.md)."""

from __future__ import annotations

from typing import Any

from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity

PUBLISHED = (
    EventType.PRODUCT_CREATED,
    EventType.PRODUCT_UPDATED,
    EventType.PRODUCT_DISABLED,
    EventType.PRODUCT_ACTIVATED,
    EventType.PRODUCT_PRICES_BULK_UPDATED,
    EventType.PRODUCT_STOCK_BULK_UPDATED,
    EventType.PRODUCTS_IMPORTED,
    EventType.STOCK_LOW,
)

ENTITY = "product"


def created(caller: Identity, after: dict[str, Any]) -> Event:
    return new_event(
        EventType.PRODUCT_CREATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=after["id"],
        data={"product": after},
        after=after,
    )


def updated(
    caller: Identity, before: dict[str, Any], after: dict[str, Any], changed: list[str]
) -> Event:
    return new_event(
        EventType.PRODUCT_UPDATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=after["id"],
        data={"changed": changed},
        before=before,
        after=after,
    )


def status_changed(caller: Identity, before: dict[str, Any], after: dict[str, Any]) -> Event:
    event_type = EventType.PRODUCT_ACTIVATED if after["status"] == 1 else EventType.PRODUCT_DISABLED
    return new_event(
        event_type,
        identity=caller,
        entity_type=ENTITY,
        entity_id=after["id"],
        data={"name": after["name"]},
        before=before,
        after=after,
    )


def prices_bulk_updated(caller: Identity, products: list[dict[str, Any]]) -> Event:
    return new_event(
        EventType.PRODUCT_PRICES_BULK_UPDATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=None,
        data={"products": products},
    )


def stock_bulk_updated(caller: Identity, products: list[dict[str, Any]]) -> Event:
    return new_event(
        EventType.PRODUCT_STOCK_BULK_UPDATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=None,
        data={"products": products},
    )


def imported(caller: Identity, *, created: int, updated: int, skipped: int) -> Event:
    return new_event(
        EventType.PRODUCTS_IMPORTED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=None,
        data={"created": created, "updated": updated, "skipped": skipped},
    )


def stock_low(
    caller: Identity, *, item_id: int, name: str, quantity: int, min_quantity: int
) -> Event:
    return new_event(
        EventType.STOCK_LOW,
        identity=caller,
        entity_type=ENTITY,
        entity_id=item_id,
        data={
            "item_id": item_id,
            "name": name,
            "quantity": quantity,
            "min_quantity": min_quantity,
            "notify_user_id": caller.user_id,
        },
    )
