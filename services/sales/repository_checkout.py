"""SQL of recording a sale (the checkout hot path), on a psycopg connection.

A sale costs the same four statements whatever its number of lines: the catalogue read (which
also takes the sale id from the sequence), the sale itself (stock through
`products.apply_stock_movements`, the header, the lines at the prices read under the row
locks: one statement with data-modifying CTEs), the outbox events, and the COMMIT. psycopg
prepares them after a few executions. The connection comes from the checkout pool
(checkout.py), not from SQLAlchemy: measured per sale, SQLAlchemy's pool checkout with
pre-ping plus its transaction handling cost more CPU than these statements themselves
(bench/results/sales.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from services.sales.model import RequestedLine
from services.sales.repository import CatalogEntry, Reservation
from services.sales.tables import outbox
from stockmanager.contracts import stock
from stockmanager.contracts.stock import StockChange, StockMovements
from stockmanager.events import Event
from stockmanager.events import outbox as outbox_sql
from stockmanager.http import dumps

CheckoutConnection = psycopg.AsyncConnection[Any]

_SALE_ID = "currval(pg_get_serial_sequence('sales.sales', 'id'))"

_RESERVE_BY_IDS = """
    WITH reserved AS (
        SELECT nextval(pg_get_serial_sequence('sales.sales', 'id')) AS sale_id,
               now() AS sold_at
    )
    SELECT r.sale_id, r.sold_at, c.id, c.name, c.status
      FROM reserved r
      LEFT JOIN products.catalog c ON c.id = ANY (CAST(%(ids)s AS bigint[]))
"""

_RESERVE_BY_BARCODE = """
    WITH reserved AS (
        SELECT nextval(pg_get_serial_sequence('sales.sales', 'id')) AS sale_id,
               now() AS sold_at
    )
    SELECT r.sale_id, r.sold_at, c.id, c.name, c.status
      FROM reserved r
      LEFT JOIN products.catalog c ON c.barcode = %(barcode)s
"""

# The stock function's call (stockmanager.contracts.stock) heads the statement; the sale id is
# the one the reservation above took from the sequence in this session.
_SELL = f"""
    WITH moved AS (
        SELECT {stock.COLUMNS} FROM {stock.call_sql("psycopg")}
    ), header AS (
        INSERT INTO sales.sales
            (id, created_at, updated_at, vendor_id, vendor_username, payment_method)
        VALUES ({_SALE_ID}, now(), now(), %(vendor_id)s, %(vendor_username)s,
                %(payment_method)s)
    ), lines AS (
        INSERT INTO sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price)
        SELECT {_SALE_ID}, m.item_id, m.name, CAST(r.e ->> 'quantity' AS integer), m.price
          FROM jsonb_array_elements(CAST(%(lines)s AS jsonb)) WITH ORDINALITY AS r(e, n)
          JOIN moved m ON m.item_id = CAST(r.e ->> 'item_id' AS bigint)
         ORDER BY r.n
    )
    SELECT {stock.COLUMNS} FROM moved
"""


@dataclass(frozen=True, slots=True)
class SaleHeader:
    vendor_id: int
    vendor_username: str
    payment_method: str
    actor_id: int | None
    actor_username: str | None


def _reservation(rows: Sequence[Any]) -> Reservation:
    sale_id, sold_at = rows[0][0], rows[0][1]
    catalog = {row[2]: CatalogEntry(row[2], row[3], row[4]) for row in rows if row[2] is not None}
    return Reservation(sale_id=sale_id, sold_at=sold_at, catalog=catalog)


async def reserve(conn: CheckoutConnection, item_ids: Sequence[int]) -> Reservation:
    """Take a sale id and read the catalogue rows of the products asked for."""
    cursor = await conn.execute(_RESERVE_BY_IDS, {"ids": list(item_ids)})
    return _reservation(await cursor.fetchall())


async def reserve_by_barcode(conn: CheckoutConnection, barcode: str) -> Reservation:
    cursor = await conn.execute(_RESERVE_BY_BARCODE, {"barcode": barcode})
    return _reservation(await cursor.fetchall())


async def sell(
    conn: CheckoutConnection, sale_id: int, lines: Sequence[RequestedLine], header: SaleHeader
) -> dict[int, StockChange]:
    """Stock, header and lines of the reserved sale; raises a StockRefused on refusal."""
    movements = StockMovements(
        {line.item_id: -line.quantity for line in lines},
        reason="sale",
        reference=f"sale:{sale_id}",
        actor_id=header.actor_id,
        actor_username=header.actor_username,
    )
    params = {
        **stock.call_params(movements),
        "lines": dumps(
            [{"item_id": line.item_id, "quantity": line.quantity} for line in lines]
        ).decode(),
        "vendor_id": header.vendor_id,
        "vendor_username": header.vendor_username,
        "payment_method": header.payment_method,
    }
    try:
        cursor = await conn.execute(_SELL, params)
    except psycopg.Error as exc:
        refused = stock.refusal(exc)
        if refused is None:
            raise
        raise refused from exc
    return stock.changes_from(await cursor.fetchall())


async def write_events(conn: CheckoutConnection, events: Sequence[Event]) -> None:
    """The sale's events into `sales.outbox` (the kernel's writer, on this connection)."""
    await outbox_sql.write_events(conn, outbox, events)
