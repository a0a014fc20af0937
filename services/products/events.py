"""Events the products service publishes: types in the kernel, payload models in
`stockmanager.contracts.events` (prose in docs/events.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stockmanager.contracts.events import (
    BulkPriceRow,
    BulkStockRow,
    PricesBulkUpdated,
    ProductCreated,
    ProductsImported,
    ProductSnapshot,
    ProductStatusChanged,
    ProductUpdated,
    StockBulkUpdated,
    StockLow,
)
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


def created(caller: Identity, after: Mapping[str, Any]) -> Event:
    snapshot = ProductSnapshot.model_validate(after)
    return new_event(
        EventType.PRODUCT_CREATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=snapshot.id,
        data=ProductCreated(product=snapshot),
        after=snapshot,
    )


def updated(
    caller: Identity, before: Mapping[str, Any], after: Mapping[str, Any], changed: list[str]
) -> Event:
    new = ProductSnapshot.model_validate(after)
    return new_event(
        EventType.PRODUCT_UPDATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=new.id,
        data=ProductUpdated(changed=tuple(changed)),
        before=ProductSnapshot.model_validate(before),
        after=new,
    )


def status_changed(caller: Identity, before: Mapping[str, Any], after: Mapping[str, Any]) -> Event:
    new = ProductSnapshot.model_validate(after)
    event_type = EventType.PRODUCT_ACTIVATED if new.status == 1 else EventType.PRODUCT_DISABLED
    return new_event(
        event_type,
        identity=caller,
        entity_type=ENTITY,
        entity_id=new.id,
        data=ProductStatusChanged(name=new.name),
        before=ProductSnapshot.model_validate(before),
        after=new,
    )


def prices_bulk_updated(caller: Identity, products: Iterable[Mapping[str, Any]]) -> Event:
    """`products`: `{id, name, old_price, new_price}` per product."""
    return new_event(
        EventType.PRODUCT_PRICES_BULK_UPDATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=None,
        data=PricesBulkUpdated(
            products=tuple(BulkPriceRow.model_validate(row) for row in products)
        ),
    )


def stock_bulk_updated(caller: Identity, products: Iterable[Mapping[str, Any]]) -> Event:
    """`products`: `{id, name, old_stock, new_stock}` per product."""
    return new_event(
        EventType.PRODUCT_STOCK_BULK_UPDATED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=None,
        data=StockBulkUpdated(products=tuple(BulkStockRow.model_validate(row) for row in products)),
    )


def imported(caller: Identity, *, created: int, updated: int, skipped: int) -> Event:
    return new_event(
        EventType.PRODUCTS_IMPORTED,
        identity=caller,
        entity_type=ENTITY,
        entity_id=None,
        data=ProductsImported(created=created, updated=updated, skipped=skipped),
    )


def stock_low(
    caller: Identity, *, item_id: int, name: str, quantity: int, min_quantity: int
) -> Event:
    return new_event(
        EventType.STOCK_LOW,
        identity=caller,
        entity_type=ENTITY,
        entity_id=item_id,
        data=StockLow(
            item_id=item_id,
            name=name,
            quantity=quantity,
            min_quantity=min_quantity,
            notify_user_id=caller.user_id,
        ),
    )
