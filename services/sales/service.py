"""Rules of the sales service. Never commits: the request boundary does.

A sale is one transaction: catalogue check, guarded stock decrement through
`products.apply_stock_movements` (rows locked in id order, ledger rows written there), the
sale header and lines, and the outbox events. Any failure rolls all of it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales import events, repository, repository_history
from services.sales import repository_checkout as checkout_sql
from services.sales.errors import InsufficientStock, ProductsUnavailable
from services.sales.model import (
    BarcodeOrder,
    RequestedLine,
    Sale,
    SaleEdit,
    SaleFilters,
    SaleLine,
    SaleOrder,
)
from services.sales.repository import CatalogEntry, ItemNotFound, StockChange, StockShortage
from services.sales.repository_checkout import CheckoutConnection, SaleHeader
from stockmanager.errors import ApiError, InternalError, NotFound, ValidationFailed
from stockmanager.events import Event
from stockmanager.identity import ROLE_SELLER, Identity

ACTIVE = 1


@dataclass(frozen=True, slots=True)
class RecordedSale:
    sale: Sale
    events: list[Event]


def not_found_message(item_id: int) -> str:
    return f"Producto con ID {item_id} no encontrado"


def _unavailable(names: Iterable[str]) -> ProductsUnavailable:
    return ProductsUnavailable("Los siguientes productos no están disponibles: " + ", ".join(names))


def _check_catalog(item_ids: Sequence[int], catalog: dict[int, CatalogEntry]) -> None:
    """Unknown ids first (the first in request order), then every disabled product at once."""
    for item_id in item_ids:
        if item_id not in catalog:
            raise ValidationFailed(not_found_message(item_id))
    disabled = [catalog[item_id].name for item_id in item_ids if catalog[item_id].status != ACTIVE]
    if disabled:
        raise _unavailable(disabled)


def _check_still_active(item_ids: Sequence[int], changes: dict[int, StockChange]) -> None:
    """The same check on the rows read under lock: a product disabled meanwhile is refused."""
    disabled = [changes[i].name for i in item_ids if i in changes and changes[i].status != ACTIVE]
    if disabled:
        raise _unavailable(disabled)


async def _apply_stock(
    conn: AsyncConnection,
    caller: Identity,
    deltas: dict[int, int],
    *,
    reason: str,
    sale_id: int,
    shown_requested: dict[int, int],
    already_held: dict[int, int] | None = None,
) -> dict[int, StockChange]:
    """Apply stock deltas; a shortage answers with the line's quantity and what it could get.

    For an edit, the units the sale already holds count as available to it.
    """
    try:
        return await repository.apply_stock_movements(
            conn,
            deltas,
            reason=reason,
            reference=f"sale:{sale_id}",
            actor_id=caller.user_id,
            actor_username=caller.username,
        )
    except repository.StockFunctionError as exc:
        raise _refusal(exc, shown_requested, already_held) from None


def _refusal(
    exc: repository.StockFunctionError,
    requested: dict[int, int],
    held: dict[int, int] | None = None,
) -> ApiError:
    """The products function's refusal as the API answers it (upstream's stock error body)."""
    if isinstance(exc, ItemNotFound):
        return ValidationFailed(not_found_message(exc.item_id))
    assert isinstance(exc, StockShortage)
    return InsufficientStock(
        product=exc.name,
        requested=requested.get(exc.item_id, exc.requested),
        available=exc.available + (held or {}).get(exc.item_id, 0),
    )


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
    _check_catalog(item_ids, reservation.catalog)
    return await _sell(conn, caller, reservation, order.lines, order.payment_method)


async def record_barcode_sale(
    conn: CheckoutConnection, caller: Identity, order: BarcodeOrder
) -> RecordedSale:
    reservation = await checkout_sql.reserve_by_barcode(conn, order.barcode)
    if not reservation.catalog:
        raise NotFound("Producto no encontrado")
    (entry,) = reservation.catalog.values()
    if entry.status != ACTIVE:
        raise _unavailable([entry.name])
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
    try:
        changes = await checkout_sql.sell(conn, lines, header)
    except repository.StockFunctionError as exc:
        raise _refusal(exc, {line.item_id: line.quantity for line in lines}) from None
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
    _check_still_active([line.item_id for line in lines], changes)
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
        seller = await repository.find_seller(conn, edit.vendor_id)
        if seller is None or not seller.active:
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
    _check_catalog(grown, await repository.catalog_entries(conn, grown))

    changes: dict[int, StockChange] = {}
    if deltas:
        changes = await _apply_stock(
            conn,
            caller,
            deltas,
            reason="sale_edit",
            sale_id=sale_id,
            shown_requested=new,
            already_held={item_id: line.quantity for item_id, line in old.items()},
        )
    _check_still_active(grown, changes)

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
