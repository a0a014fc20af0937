"""SQL of sale edits and sellers, and the products contract's types and errors.

Recording a sale (the hot path) is in repository_checkout.py, history reads in
repository_history.py, idempotency records in repository_keys.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales.model import Sale, SaleLine
from services.sales.tables import users_directory
from stockmanager.events import Event
from stockmanager.http import dumps

# ------------------------------------------------------------------------ products contract


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: int
    name: str
    status: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """A sale id taken from the sequence, the transaction time, and the catalogue rows."""

    sale_id: int
    sold_at: datetime
    catalog: dict[int, CatalogEntry]


@dataclass(frozen=True, slots=True)
class StockChange:
    """One row returned by `products.apply_stock_movements` (read under the row lock)."""

    item_id: int
    name: str
    price: Decimal
    quantity_after: int
    min_quantity: int
    status: int
    crossed_low: bool


class StockFunctionError(Exception):
    pass


class ItemNotFound(StockFunctionError):
    def __init__(self, item_id: int) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class StockShortage(StockFunctionError):
    def __init__(self, item_id: int, name: str, requested: int, available: int) -> None:
        super().__init__(item_id)
        self.item_id = item_id
        self.name = name
        self.requested = requested
        self.available = available


def changes_from(rows: Sequence[Any]) -> dict[int, StockChange]:
    """Rows of `products.apply_stock_movements` (item_id, name, price, quantity_after,
    min_quantity, status, crossed_low) by item id."""
    return {
        row[0]: StockChange(
            item_id=row[0],
            name=row[1],
            price=row[2],
            quantity_after=row[3],
            min_quantity=row[4],
            status=row[5],
            crossed_low=bool(row[6]),
        )
        for row in rows
    }


# ----------------------------------------------------------------------------- sale edits

_CATALOG_BY_IDS = text(
    "SELECT id, name, status FROM products.catalog WHERE id = ANY (CAST(:ids AS bigint[]))"
)

_APPLY_STOCK = text(
    """
    SELECT item_id, name, price, quantity_after, min_quantity, status, crossed_low
      FROM products.apply_stock_movements(
               CAST(:movements AS jsonb), :reason, :reference, :actor_id, :actor_username)
    """
)


async def catalog_entries(
    conn: AsyncConnection, item_ids: Sequence[int]
) -> dict[int, CatalogEntry]:
    if not item_ids:
        return {}
    rows = (await conn.execute(_CATALOG_BY_IDS, {"ids": list(item_ids)})).all()
    return {row.id: CatalogEntry(row.id, row.name, row.status) for row in rows}


async def apply_stock_movements(
    conn: AsyncConnection,
    deltas: dict[int, int],
    *,
    reason: str,
    reference: str,
    actor_id: int | None,
    actor_username: str | None,
) -> dict[int, StockChange]:
    """Guarded stock change of several items in the caller's transaction (products contract).

    Raises ItemNotFound / StockShortage (the transaction is then aborted: let it roll back).
    """
    movements = [{"item_id": item_id, "delta": delta} for item_id, delta in deltas.items()]
    try:
        rows = (
            await conn.execute(
                _APPLY_STOCK,
                {
                    "movements": json.dumps(movements),
                    "reason": reason,
                    "reference": reference,
                    "actor_id": actor_id,
                    "actor_username": actor_username,
                },
            )
        ).all()
    except DBAPIError as exc:
        error = stock_error(exc.orig) if exc.orig is not None else None
        if error is None:
            raise
        raise error from exc
    return changes_from(rows)


def stock_error(exc: BaseException) -> StockFunctionError | None:
    """The products function's refusals (SQLSTATE SM404 / SM409), from a psycopg error."""
    state = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    detail = getattr(diag, "message_detail", None) or ""
    if state == "SM404":
        return ItemNotFound(int(detail))
    if state == "SM409":
        info = json.loads(detail)
        return StockShortage(
            int(info["item_id"]), str(info["name"]), int(info["requested"]), int(info["available"])
        )
    return None


_ENVELOPE_FIELDS = tuple(field.name for field in fields(Event))


def events_json(events: Iterable[Event]) -> str:
    # The envelope's values are already plain JSON data: a shallow dict is enough (asdict's
    # recursive deep copy showed up in the checkout profile).
    return dumps(
        [{name: getattr(event, name) for name in _ENVELOPE_FIELDS} for event in events]
    ).decode()


def _lines_json(lines: Iterable[SaleLine]) -> str:
    return dumps(
        [
            {
                "item_id": line.item_id,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
            }
            for line in lines
        ]
    ).decode()


_OUTBOX_INSERT = """
    INSERT INTO sales.outbox (id, type, payload)
    SELECT CAST(e ->> 'id' AS uuid), e ->> 'type', e
      FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS ev(e, n)
     ORDER BY ev.n
"""

_LINES_INSERT = """
    INSERT INTO sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price)
    SELECT :sale_id, CAST(e ->> 'item_id' AS bigint), e ->> 'name',
           CAST(e ->> 'quantity' AS integer), CAST(e ->> 'unit_price' AS numeric)
      FROM jsonb_array_elements(CAST(:added AS jsonb)) WITH ORDINALITY AS ln(e, n)
     ORDER BY ln.n
"""

_LOCK_SALE = text(
    """
    SELECT id, created_at, vendor_id, vendor_username, payment_method
      FROM sales.sales
     WHERE id = :sale_id
       FOR UPDATE
    """
)

_SALE_LINES = text(
    """
    SELECT item_id, item_name, quantity, unit_price
      FROM sales.sale_lines
     WHERE sale_id = :sale_id
     ORDER BY id
    """
)


async def lock_sale(conn: AsyncConnection, sale_id: int) -> Sale | None:
    """The sale with its lines, its header row locked until the transaction ends.

    The lines are read by a second statement on purpose: under READ COMMITTED a statement that
    waited for the lock still sees the rows of its own (older) snapshot, so lines read together
    with the lock could predate a concurrent edit that committed meanwhile.
    """
    header = (await conn.execute(_LOCK_SALE, {"sale_id": sale_id})).first()
    if header is None:
        return None
    rows = (await conn.execute(_SALE_LINES, {"sale_id": sale_id})).all()
    return Sale(
        id=header.id,
        sold_at=header.created_at,
        vendor_id=header.vendor_id,
        vendor_username=header.vendor_username,
        payment_method=header.payment_method,
        lines=tuple(
            SaleLine(row.item_id, row.item_name, row.quantity, row.unit_price) for row in rows
        ),
    )


_REPLACE_LINES = text(
    f"""
    WITH removed AS (
        DELETE FROM sales.sale_lines
         WHERE sale_id = :sale_id AND NOT (item_id = ANY (CAST(:keep_ids AS bigint[])))
    ), changed AS (
        UPDATE sales.sale_lines AS l
           SET quantity = CAST(c.e ->> 'quantity' AS integer)
          FROM jsonb_array_elements(CAST(:changed AS jsonb)) AS c(e)
         WHERE l.sale_id = :sale_id AND l.item_id = CAST(c.e ->> 'item_id' AS bigint)
    ), added AS ({_LINES_INSERT}
    ), header AS (
        UPDATE sales.sales
           SET vendor_id = :vendor_id, vendor_username = :vendor_username,
               payment_method = :payment_method, updated_at = now()
         WHERE id = :sale_id
    )
    {_OUTBOX_INSERT}
    """
)


async def rewrite_sale(
    conn: AsyncConnection,
    *,
    before: Sale,
    after: Sale,
    events: Sequence[Event],
) -> None:
    """Turn `before` into `after` in one statement.

    Kept products keep their line (and so its unit price); the three line sets are disjoint,
    so the sub-statements never touch the same row.
    """
    old = {line.item_id: line for line in before.lines}
    new_ids = {line.item_id for line in after.lines}
    keep_ids = [item_id for item_id in old if item_id in new_ids]
    changed = [
        {"item_id": line.item_id, "quantity": line.quantity}
        for line in after.lines
        if line.item_id in old and old[line.item_id].quantity != line.quantity
    ]
    added = [line for line in after.lines if line.item_id not in old]
    await conn.execute(
        _REPLACE_LINES,
        {
            "sale_id": after.id,
            "keep_ids": keep_ids,
            "changed": json.dumps(changed),
            "added": _lines_json(added),
            "vendor_id": after.vendor_id,
            "vendor_username": after.vendor_username,
            "payment_method": after.payment_method,
            "events": events_json(events),
        },
    )


# ------------------------------------------------------------------------------- sellers


@dataclass(frozen=True, slots=True)
class Seller:
    id: int
    username: str
    active: bool


async def find_seller(conn: AsyncConnection, user_id: int) -> Seller | None:
    row = (
        await conn.execute(
            select(
                users_directory.c.id,
                users_directory.c.username,
                users_directory.c.status,
                users_directory.c.application,
            ).where(users_directory.c.id == user_id)
        )
    ).first()
    if row is None:
        return None
    return Seller(row.id, row.username, row.status == 1 and row.application == "accepted")
