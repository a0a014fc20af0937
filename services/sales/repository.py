"""SQL of sale edits, and the catalogue rows sales reads from the products schema.

Recording a sale (the hot path) is in repository_checkout.py, history reads in
repository_history.py, idempotency records in repository_keys.py. The stock function, the
outbox writer and the users directory are kernel contracts (stockmanager.contracts.stock,
stockmanager.events.outbox, stockmanager.contracts.users_directory).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales.model import Sale, SaleLine
from services.sales.tables import outbox
from stockmanager.events import Event
from stockmanager.events import outbox as outbox_sql
from stockmanager.http import dumps

# ------------------------------------------------------------------------ products catalogue


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


# ----------------------------------------------------------------------------- sale edits

_CATALOG_BY_IDS = text(
    "SELECT id, name, status FROM products.catalog WHERE id = ANY (CAST(:ids AS bigint[]))"
)


async def catalog_entries(
    conn: AsyncConnection, item_ids: Sequence[int]
) -> dict[int, CatalogEntry]:
    if not item_ids:
        return {}
    rows = (await conn.execute(_CATALOG_BY_IDS, {"ids": list(item_ids)})).all()
    return {row.id: CatalogEntry(row.id, row.name, row.status) for row in rows}


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
    {outbox_sql.insert_sql(outbox, "sqlalchemy")}
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
            outbox_sql.ROWS_PARAM: outbox_sql.rows_json(events),
        },
    )
