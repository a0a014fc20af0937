"""Events the sales service publishes, with the payloads of docs/events.md."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.sales.model import Sale
from services.sales.repository import StockChange
from services.sales.schemas import line_payload
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity

PUBLISHED = (EventType.SALE_CREATED, EventType.SALE_UPDATED, EventType.STOCK_LOW)


def sale_snapshot(sale: Sale) -> dict[str, Any]:
    """`{vendor_id, payment_method, total, items}`: the before/after of `sale.updated`."""
    return {
        "vendor_id": sale.vendor_id,
        "payment_method": sale.payment_method,
        "total": sale.total,
        "items": [line_payload(line) for line in sale.lines],
    }


def sale_created(sale: Sale, caller: Identity) -> Event:
    data = {
        "sale_id": sale.id,
        "vendor_id": sale.vendor_id,
        "vendor_username": sale.vendor_username,
        "payment_method": sale.payment_method,
        "total": sale.total,
        "items": [line_payload(line) for line in sale.lines],
    }
    return new_event(
        EventType.SALE_CREATED,
        identity=caller,
        entity_type="sale",
        entity_id=sale.id,
        data=data,
        after=dict(data),
    )


def sale_updated(before: Sale, after: Sale, caller: Identity) -> Event:
    return new_event(
        EventType.SALE_UPDATED,
        identity=caller,
        entity_type="sale",
        entity_id=after.id,
        data={"sale_id": after.id},
        before=sale_snapshot(before),
        after=sale_snapshot(after),
    )


def stock_low(changes: Iterable[StockChange], caller: Identity) -> list[Event]:
    """One `product.stock_low` per active product whose stock crossed into the low zone."""
    return [
        new_event(
            EventType.STOCK_LOW,
            identity=caller,
            entity_type="product",
            entity_id=change.item_id,
            data={
                "item_id": change.item_id,
                "name": change.name,
                "quantity": change.quantity_after,
                "min_quantity": change.min_quantity,
                "notify_user_id": caller.user_id,
            },
        )
        for change in changes
        if change.crossed_low and change.status == 1
    ]
