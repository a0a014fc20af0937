"""Rules of the sales service. Never commits: the request boundary does.

A sale is one transaction: catalogue check, guarded stock decrement through
`products.apply_stock_movements` (rows locked in id order, ledger rows written there), the
sale header and lines, and the outbox events; for a new sale all of it is one call of
`sales.record_sale` (repository_checkout.py). Any failure rolls all of it back.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales import events, repository, repository_history
from services.sales import repository_checkout as checkout_sql
from services.sales.model import (
    BarcodeOrder,
    Sale,
    SaleEdit,
    SaleFilters,
    SaleLine,
    SaleOrder,
)
from services.sales.repository_checkout import CheckoutConnection, SaleEvents, SaleHeader
from stockmanager.contracts import stock, users_directory
from stockmanager.contracts.stock import InsufficientStock, StockChange, StockMovements
from stockmanager.errors import NotFound, ValidationFailed
from stockmanager.identity import ROLE_SELLER, Identity


async def _apply_stock(
    conn: AsyncConnection,
    caller: Identity,
    deltas: dict[int, int],
    *,
    sale_id: int,
    shown_requested: dict[int, int],
    already_held: dict[int, int],
) -> dict[int, StockChange]:
    """Apply an edit's stock deltas; a shortage answers with the line's quantity and what it
    could get, the units the sale already holds counting as available to it."""
    try:
        return await stock.apply_stock_movements(
            conn,
            StockMovements(
                deltas,
                reason="sale_edit",
                reference=f"sale:{sale_id}",
                actor_id=caller.user_id,
                actor_username=caller.username,
            ),
        )
    except InsufficientStock as exc:
        raise exc.as_seen_by(shown_requested, already_held) from None


# ------------------------------------------------------------------------------ new sales


def _header(caller: Identity, payment_method: str) -> SaleHeader:
    assert caller.user_id is not None
    return SaleHeader(
        vendor_id=caller.user_id,
        vendor_username=caller.username or "unknown",
        payment_method=payment_method,
        actor_id=caller.user_id,
        actor_username=caller.username,
    )


def _events(header: SaleHeader, caller: Identity) -> SaleEvents:
    created = events.sale_created_template(
        header.vendor_id, header.vendor_username, header.payment_method, caller
    )
    return SaleEvents(created, events.stock_low_template(created, caller))


async def record_bulk_sale(conn: CheckoutConnection, caller: Identity, order: SaleOrder) -> Sale:
    """The sale with its events (`sales.record_sale`: unknown products first, in the order
    asked, then every disabled one, then stock)."""
    header = _header(caller, order.payment_method)
    return await checkout_sql.record_sale(conn, header, _events(header, caller), lines=order.lines)


async def record_barcode_sale(
    conn: CheckoutConnection, caller: Identity, order: BarcodeOrder
) -> Sale:
    """As `record_bulk_sale`, one line; an unknown barcode is 404 `Producto no encontrado`."""
    header = _header(caller, order.payment_method)
    return await checkout_sql.record_sale(
        conn, header, _events(header, caller), barcode=order.barcode, quantity=order.quantity
    )


# ---------------------------------------------------------------------------------- edits


async def edit_sale(conn: AsyncConnection, caller: Identity, sale_id: int, edit: SaleEdit) -> Sale:
    """Replace a sale's lines, seller and payment method; stock moves by the difference only.

    Products that stay keep the unit price (and name) they were sold at; new products take
    the current price. Only products whose quantity grows must exist and be active.
    """
    before = await repository.lock_sale(conn, sale_id)
    if before is None:
        raise NotFound("Venta no encontrada")

    vendor_id, vendor_username = before.vendor_id, before.vendor_username
    if edit.vendor_id is not None and edit.vendor_id != before.vendor_id:
        seller = await users_directory.find_user(conn, edit.vendor_id)
        if seller is None or not seller.is_active:
            raise ValidationFailed("El vendedor no existe o no está activo")
        vendor_id, vendor_username = seller.id, seller.username

    old = {line.item_id: line for line in before.lines}
    new = {line.item_id: line.quantity for line in edit.lines}
    deltas: dict[int, int] = {}  # stock deltas: what the sale gives back minus what it takes
    for item_id in old.keys() | new.keys():
        held = old[item_id].quantity if item_id in old else 0
        delta = held - new.get(item_id, 0)
        if delta:
            deltas[item_id] = delta
    grown = [line.item_id for line in edit.lines if deltas.get(line.item_id, 0) < 0]
    stock.require_known_active(grown, await repository.catalog_entries(conn, grown))

    changes: dict[int, StockChange] = {}
    if deltas:
        changes = await _apply_stock(
            conn,
            caller,
            deltas,
            sale_id=sale_id,
            shown_requested=new,
            already_held={item_id: line.quantity for item_id, line in old.items()},
        )
    stock.require_active(grown, changes)

    kept = [
        dataclasses.replace(line, quantity=new[line.item_id])
        for line in before.lines
        if line.item_id in new
    ]
    added = [
        SaleLine(
            line.item_id, changes[line.item_id].name, line.quantity, changes[line.item_id].price
        )
        for line in edit.lines
        if line.item_id not in old
    ]
    after = Sale(
        id=before.id,
        sold_at=before.sold_at,
        vendor_id=vendor_id,
        vendor_username=vendor_username,
        payment_method=edit.payment_method or before.payment_method,
        lines=(*kept, *added),
    )
    await repository.rewrite_sale(
        conn,
        before=before,
        after=after,
        events=[
            events.sale_updated(before, after, caller),
            *events.stock_low(changes.values(), caller),
        ],
    )
    return after


# -------------------------------------------------------------------------------- reading


def visible_to(caller: Identity, filters: SaleFilters) -> SaleFilters:
    """Sellers see their own sales; admins and root see every sale."""
    if caller.role == ROLE_SELLER:
        return dataclasses.replace(filters, only_vendor_id=caller.user_id)
    return filters


async def list_sales(
    conn: AsyncConnection, caller: Identity, filters: SaleFilters, *, offset: int, limit: int
) -> tuple[list[Sale], int]:
    scoped = visible_to(caller, filters)
    total = await repository_history.count_sales(conn, scoped)
    if total == 0 or offset >= total:
        return [], total
    return await repository_history.list_sales(conn, scoped, offset=offset, limit=limit), total


async def get_sale(conn: AsyncConnection, caller: Identity, sale_id: int) -> Sale | None:
    scope = visible_to(caller, SaleFilters()).only_vendor_id
    return await repository_history.get_sale(conn, sale_id, only_vendor_id=scope)


async def get_sale_for_edit(conn: AsyncConnection, sale_id: int) -> Sale:
    sale = await repository_history.get_sale(conn, sale_id, only_vendor_id=None)
    if sale is None:
        raise NotFound("Venta no encontrada")
    return sale
