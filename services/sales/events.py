"""Events the sales service publishes: types in the kernel, payload models in
`stockmanager.contracts.events` (prose in docs/events.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from services.sales.model import Sale
from stockmanager.contracts.events import SaleCreated, SaleLine, SaleState, SaleUpdated, StockLow
from stockmanager.contracts.stock import StockChange
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity

PUBLISHED = (EventType.SALE_CREATED, EventType.SALE_UPDATED, EventType.STOCK_LOW)


def sale_lines(sale: Sale) -> tuple[SaleLine, ...]:
    return tuple(
        SaleLine(
            item_id=line.item_id,
            name=line.name,
            quantity=line.quantity,
            unit_price=float(line.unit_price),
            subtotal=float(line.subtotal),
        )
        for line in sale.lines
    )


def sale_snapshot(sale: Sale) -> SaleState:
    """`{vendor_id, payment_method, total, items}`: the before/after of `sale.updated`."""
    return SaleState(
        vendor_id=sale.vendor_id,
        payment_method=sale.payment_method,
        total=float(sale.total),
        items=sale_lines(sale),
    )


def sale_created(sale: Sale, caller: Identity) -> Event:
    data = SaleCreated(
        sale_id=sale.id,
        vendor_id=sale.vendor_id,
        vendor_username=sale.vendor_username,
        payment_method=sale.payment_method,
        total=float(sale.total),
        items=sale_lines(sale),
    )
    return new_event(
        EventType.SALE_CREATED,
        identity=caller,
        entity_type="sale",
        entity_id=sale.id,
        data=data,
        after=data,
    )


def sale_created_template(
    vendor_id: int, vendor_username: str, payment_method: str, caller: Identity
) -> Event:
    """`sale.created` before the sale exists, for `sales.record_sale` (the checkout in one
    statement), which sets `entity.id` and adds `sale_id`, `total` and `items` to `data` (and
    copies `data` to `after`) from the rows it locked. tests/sales/test_record_sale_events.py
    checks the outcome equals `sale_created()` of the recorded sale."""
    return new_event(
        EventType.SALE_CREATED,
        identity=caller,
        entity_type="sale",
        entity_id=None,
        data={
            "vendor_id": vendor_id,
            "vendor_username": vendor_username,
            "payment_method": payment_method,
        },
    )


def stock_low_template(sale_created: Event, caller: Identity) -> Event:
    """`product.stock_low` before the crossing is known, for `sales.record_sale`, which gives
    each crossing a new `id`, sets `entity.id` and adds the product's `item_id`, `name`,
    `quantity` and `min_quantity` to `data` (as `stock_low()` builds them). The sale's template
    with another type and data: same actor, request and time (new_event's uuid and clock per
    sale are not needed twice)."""
    return dataclasses.replace(
        sale_created,
        type=EventType.STOCK_LOW.value,
        entity={"type": "product", "id": None},
        data={"notify_user_id": caller.user_id},
        before=None,
        after=None,
    )


def sale_updated(before: Sale, after: Sale, caller: Identity) -> Event:
    return new_event(
        EventType.SALE_UPDATED,
        identity=caller,
        entity_type="sale",
        entity_id=after.id,
        data=SaleUpdated(sale_id=after.id),
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
            data=StockLow(
                item_id=change.item_id,
                name=change.name,
                quantity=change.quantity_after,
                min_quantity=change.min_quantity,
                notify_user_id=caller.user_id,
            ),
        )
        for change in changes
        if change.crossed_low  # active, and from above the minimum to at or below it
    ]
