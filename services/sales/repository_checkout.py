"""SQL of recording a sale (the checkout hot path), on a psycopg connection.

A sale is one statement: `sales.record_sale(...)` (services/sales/migrations/versions/
0003_record_sale.py) checks the products, applies the stock through
`products.apply_stock_movements`, writes the header, the lines at the names and prices read
under the row locks, and the outbox events, and answers the lines. Without an Idempotency-Key
it runs in autocommit, so the statement is its own transaction: one round trip per sale
(before: BEGIN, catalogue read, sale, outbox insert, COMMIT, about half of the service's CPU per
sale in the driver). The connection comes from the checkout pool (checkout.py), not from
SQLAlchemy: measured per sale, SQLAlchemy's pool checkout with pre-ping plus its transaction
handling cost more CPU than the statement itself (bench/results/sales.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from services.sales.model import RequestedLine, Sale, SaleLine
from stockmanager.contracts import stock
from stockmanager.contracts.stock import ProductsUnavailable
from stockmanager.errors import NotFound
from stockmanager.events import Event
from stockmanager.events.outbox import envelope_json
from stockmanager.http import dumps

CheckoutConnection = psycopg.AsyncConnection[Any]

_RECORD_SALE = """
    SELECT sale_id, sold_at, item_id, item_name, unit_price, quantity
      FROM sales.record_sale(CAST(%(lines)s AS jsonb), %(barcode)s, %(quantity)s,
                             %(vendor_id)s, %(vendor_username)s, %(payment_method)s,
                             %(actor_id)s, %(actor_username)s,
                             CAST(%(sale_event)s AS jsonb), CAST(%(low_event)s AS jsonb))
"""

# The function's own refusals (the stock function's SM404/SM409 are stock.refusal()'s).
_BARCODE_NOT_FOUND = "SA404"
_UNAVAILABLE = "SA423"


@dataclass(frozen=True, slots=True)
class SaleHeader:
    vendor_id: int
    vendor_username: str
    payment_method: str
    actor_id: int | None
    actor_username: str | None


@dataclass(frozen=True, slots=True)
class SaleEvents:
    """The envelopes `sales.record_sale` completes (services/sales/events.py templates)."""

    sale_created: Event
    stock_low: Event


async def record_sale(
    conn: CheckoutConnection,
    header: SaleHeader,
    events: SaleEvents,
    *,
    lines: Sequence[RequestedLine] = (),
    barcode: str | None = None,
    quantity: int | None = None,
) -> Sale:
    """Record a sale of `lines` (or of `quantity` of the product with `barcode`) with its
    events; raises the API's refusal (UnknownProduct, ProductsUnavailable, InsufficientStock,
    NotFound for an unknown barcode). In autocommit this is the whole transaction."""
    items = [{"item_id": line.item_id, "quantity": line.quantity} for line in lines]
    params = {
        "lines": None if barcode is not None else dumps(items).decode(),
        "barcode": barcode,
        "quantity": quantity,
        "vendor_id": header.vendor_id,
        "vendor_username": header.vendor_username,
        "payment_method": header.payment_method,
        "actor_id": header.actor_id,
        "actor_username": header.actor_username,
        "sale_event": envelope_json(events.sale_created),
        "low_event": envelope_json(events.stock_low),
    }
    try:
        cursor = await conn.execute(_RECORD_SALE, params)
    except psycopg.Error as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        raise refused from exc
    rows = await cursor.fetchall()
    return Sale(
        id=rows[0][0],
        sold_at=rows[0][1],
        vendor_id=header.vendor_id,
        vendor_username=header.vendor_username,
        payment_method=header.payment_method,
        lines=tuple(SaleLine(row[2], row[3], row[5], row[4]) for row in rows),
    )


def _refusal(exc: psycopg.Error) -> Exception | None:
    """The API error of the function's refusals (None: not a refusal)."""
    state = exc.sqlstate
    if state == _BARCODE_NOT_FOUND:
        return NotFound("Producto no encontrado")
    if state == _UNAVAILABLE:
        return ProductsUnavailable(orjson.loads(exc.diag.message_detail or "[]"))
    return stock.refusal(exc)
