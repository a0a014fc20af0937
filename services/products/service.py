"""Rules of the products service. Never commits: the request boundary does."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.products import events, repository, schemas
from services.products.tables import outbox
from services.products.validation import FIELD_ORDER
from stockmanager.contracts.stock import (
    REFERENCE_MAX,
    StockChange,
    StockMovements,
    StockReason,
    apply_stock_movements,
    product_crossed_low,
)
from stockmanager.errors import NotFound, ValidationFailed
from stockmanager.events import Event, write_event, write_events
from stockmanager.identity import Identity


def stock_reference(caller: Identity) -> str:
    """The ledger reference of a change made by a request of this service."""
    return f"request:{caller.request_id}"[:REFERENCE_MAX]


async def apply_stock(
    conn: AsyncConnection, caller: Identity, deltas: dict[int, int], *, reason: StockReason
) -> dict[int, StockChange]:
    """Every stock change of this service goes through products.apply_stock_movements."""
    return await apply_stock_movements(
        conn,
        StockMovements(
            {item_id: delta for item_id, delta in deltas.items() if delta != 0},
            reason=reason,
            reference=stock_reference(caller),
            actor_id=caller.user_id,
            actor_username=caller.username,
        ),
    )


def stock_low_event(caller: Identity, row: Any) -> Event:
    return events.stock_low(
        caller,
        item_id=row.id,
        name=row.name,
        quantity=row.quantity,
        min_quantity=row.min_quantity,
    )


async def create_product(conn: AsyncConnection, caller: Identity, clean: dict[str, Any]) -> int:
    values = dict(clean)
    quantity = values.pop("quantity")
    # Inserted empty, then stocked through the stock function: the ledger starts at creation.
    product_id = await repository.insert_product(conn, {**values, "quantity": 0})
    await apply_stock(conn, caller, {product_id: quantity}, reason="initial")
    row = await repository.get_product(conn, product_id)
    await write_event(conn, outbox, events.created(caller, schemas.snapshot(row)))
    return product_id


async def update_product(
    conn: AsyncConnection, caller: Identity, product_id: int, clean: dict[str, Any]
) -> None:
    """`clean`: the validated fields the client sent (`schemas.ProductUpdate.changes()`)."""
    before = await repository.lock_product(conn, product_id)
    if before is None:
        raise NotFound(schemas.NOT_FOUND)
    changes = {key: value for key, value in clean.items() if getattr(before, key) != value}
    if not changes:
        raise ValidationFailed(schemas.NOTHING_TO_UPDATE)
    changed = [key for key in FIELD_ORDER if key in changes]
    quantity = changes.pop("quantity", None)
    if changes:
        await repository.update_product(conn, product_id, changes)
    if quantity is not None:
        await apply_stock(
            conn, caller, {product_id: quantity - before.quantity}, reason="product_update"
        )
    after = await repository.get_product(conn, product_id)
    pending = [events.updated(caller, schemas.snapshot(before), schemas.snapshot(after), changed)]
    if after is not None and product_crossed_low(before, after):
        pending.append(stock_low_event(caller, after))
    await write_events(conn, outbox, pending)


async def set_status(conn: AsyncConnection, caller: Identity, product_id: int, status: int) -> None:
    """Disable (DELETE) or activate. Repeating it is a no-op without an event."""
    before = await repository.lock_product(conn, product_id)
    if before is None:
        raise NotFound(schemas.NOT_FOUND)
    if before.status == status:
        return
    await repository.set_status(conn, product_id, status)
    after = await repository.get_product(conn, product_id)
    event = events.status_changed(caller, schemas.snapshot(before), schemas.snapshot(after))
    await write_event(conn, outbox, event)


async def _lock_all(conn: AsyncConnection, product_ids: list[int]) -> dict[int, Any]:
    locked = await repository.lock_products(conn, product_ids)
    missing = sorted(set(product_ids) - set(locked))
    if missing:
        raise NotFound(schemas.NOT_FOUND, ids=missing)
    return locked


async def update_prices(
    conn: AsyncConnection, caller: Identity, prices: dict[int, Decimal]
) -> None:
    """All or nothing: `prices` is validated (`schemas.PriceBulk`); every id must exist."""
    if not prices:
        return
    locked = await _lock_all(conn, list(prices))
    await repository.set_prices(
        conn, {pid: price for pid, price in prices.items() if locked[pid].price != price}
    )
    report = [
        {
            "id": pid,
            "name": locked[pid].name,
            "old_price": float(locked[pid].price),
            "new_price": float(price),
        }
        for pid, price in sorted(prices.items())
    ]
    await write_event(conn, outbox, events.prices_bulk_updated(caller, report))


async def update_stock(conn: AsyncConnection, caller: Identity, stock: dict[int, int]) -> None:
    """Absolute stock for many products (validated by `schemas.StockBulk`), all or nothing,
    through the stock function."""
    if not stock:
        return
    locked = await _lock_all(conn, list(stock))
    applied = await apply_stock(
        conn,
        caller,
        {pid: quantity - locked[pid].quantity for pid, quantity in stock.items()},
        reason="bulk_stock",
    )
    report = [
        {"id": pid, "name": locked[pid].name, "old_stock": locked[pid].quantity, "new_stock": qty}
        for pid, qty in sorted(stock.items())
    ]
    pending = [events.stock_bulk_updated(caller, report)]
    for pid in sorted(applied):
        row = applied[pid]
        if row.crossed_low:
            pending.append(
                events.stock_low(
                    caller,
                    item_id=pid,
                    name=row.name,
                    quantity=row.quantity_after,
                    min_quantity=row.min_quantity,
                )
            )
    await write_events(conn, outbox, pending)
