"""Rules of the sales service. Never commits: the request boundary does.

A sale is one transaction: catalogue check, guarded stock decrement through
`products.apply_stock_movements` (rows locked in id order, ledger rows written there), the
sale header and lines, and the outbox events. Any failure rolls all of it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales import events, repository, repository_history
from services.sales import repository_checkout as checkout_sql
from services.sales.model import (
    BarcodeOrder,
    RequestedLine,
    Sale,
    SaleEdit,
    SaleFilters,
    SaleLine,
    SaleOrder,
)
from services.sales.repository_checkout import CheckoutConnection, SaleHeader
from stockmanager.contracts import stock, users_directory
from stockmanager.contracts.stock import InsufficientStock, StockChange, StockMovements
from stockmanager.errors import InternalError, NotFound, ValidationFailed
from stockmanager.events import Event
from stockmanager.identity import ROLE_SELLER, Identity


@dataclass(frozen=True, slots=True)
class RecordedSale:
    sale: Sale
    events: list[Event]


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


async def record_bulk_sale(
    conn: CheckoutConnection, caller: Identity, order: SaleOrder
) -> RecordedSale:
    item_ids = [line.item_id for line in order.lines]
    reservation = await checkout_sql.reserve(conn, item_ids)
    stock.require_known_active(item_ids, reservation.catalog)
    return await _sell(conn, caller, reservation, order.lines, order.payment_method)


async def record_barcode_sale(
    conn: CheckoutConnection, caller: Identity, order: BarcodeOrder
) -> RecordedSale:
    reservation = await checkout_sql.reserve_by_barcode(conn, order.barcode)
    if not reservation.catalog:
        raise NotFound("Producto no encontrado")
    (entry,) = reservation.catalog.values()
    stock.require_active([entry.id], reservation.catalog)
    lines = (RequestedLine(entry.id, order.quantity),)
    return await _sell(conn, caller, reservation, lines, order.payment_method)


async def _sell(
    conn: CheckoutConnection,
    caller: Identity,
    reservation: repository.Reservation,
    lines: Sequence[RequestedLine],
    payment_method: str,
) -> RecordedSale:
    header = _header(caller, payment_method)
    changes = await checkout_sql.sell(conn, reservation.sale_id, lines, header)
    return _recorded(reservation, lines, header, changes, caller)


def _recorded(
    reservation: repository.Reservation,
    lines: Sequence[RequestedLine],
    header: SaleHeader,
    changes: dict[int, StockChange],
    caller: Identity,
) -> RecordedSale:
    """The sale as written (stock rows locked), after the last check, with its events.

    The request boundary (checkout.run_sale) writes the events as the transaction's last
    statement.
    """
    if any(line.item_id not in changes for line in lines):
        # The stock function answers for every item it was given; anything else would record
        # a sale without some of its lines, so refuse it (the transaction rolls back).
        raise InternalError("Error en la base de datos")
    stock.require_active([line.item_id for line in lines], changes)
    sale = Sale(
        id=reservation.sale_id,
        sold_at=reservation.sold_at,
        vendor_id=header.vendor_id,
        vendor_username=header.vendor_username,
        payment_method=header.payment_method,
        lines=tuple(
            # Name and price as read under the stock row lock: what the customer paid.
            SaleLine(
                line.item_id,
                changes[line.item_id].name,
                line.quantity,
                changes[line.item_id].price,
            )
            for line in lines
        ),
    )
    return RecordedSale(
        sale, [events.sale_created(sale, caller), *events.stock_low(changes.values(), caller)]
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
