"""All SQL of the sales service.

The write path is a handful of statements per sale, whatever the number of lines: read the
catalogue (and reserve the sale id) in one statement, change stock through
`products.apply_stock_movements` in one, and write the header, the lines and the outbox events
in one more (data-modifying CTEs). Plain SQL text keeps those hot statements cheap to execute
and lets psycopg prepare them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales.model import Sale, SaleFilters, SaleLine
from services.sales.tables import sale_lines, sales, users_directory
from stockmanager.db import sqlstate
from stockmanager.events import Event
from stockmanager.http import dumps
from stockmanager.sqltext import LIKE_ESCAPE, like_contains

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


_RESERVE_BY_IDS = text(
    """
    WITH reserved AS (
        SELECT nextval(pg_get_serial_sequence('sales.sales', 'id')) AS sale_id,
               now() AS sold_at
    )
    SELECT r.sale_id, r.sold_at, c.id, c.name, c.status
      FROM reserved r
      LEFT JOIN products.catalog c ON c.id = ANY (CAST(:ids AS bigint[]))
    """
)

_RESERVE_BY_BARCODE = text(
    """
    WITH reserved AS (
        SELECT nextval(pg_get_serial_sequence('sales.sales', 'id')) AS sale_id,
               now() AS sold_at
    )
    SELECT r.sale_id, r.sold_at, c.id, c.name, c.status
      FROM reserved r
      LEFT JOIN products.catalog c ON c.barcode = :barcode
    """
)

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


def _reservation(rows: Sequence[Any]) -> Reservation:
    first = rows[0]
    catalog = {
        row.id: CatalogEntry(row.id, row.name, row.status) for row in rows if row.id is not None
    }
    return Reservation(sale_id=first.sale_id, sold_at=first.sold_at, catalog=catalog)


async def reserve_sale(conn: AsyncConnection, item_ids: Sequence[int]) -> Reservation:
    rows = (await conn.execute(_RESERVE_BY_IDS, {"ids": list(item_ids)})).all()
    return _reservation(rows)


async def reserve_sale_by_barcode(conn: AsyncConnection, barcode: str) -> Reservation:
    rows = (await conn.execute(_RESERVE_BY_BARCODE, {"barcode": barcode})).all()
    return _reservation(rows)


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
        error = _stock_error(exc)
        if error is None:
            raise
        raise error from exc
    return {
        row.item_id: StockChange(
            item_id=row.item_id,
            name=row.name,
            price=row.price,
            quantity_after=row.quantity_after,
            min_quantity=row.min_quantity,
            status=row.status,
            crossed_low=bool(row.crossed_low),
        )
        for row in rows
    }


def _stock_error(exc: DBAPIError) -> StockFunctionError | None:
    state = sqlstate(exc)
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    detail = getattr(diag, "message_detail", None) or ""
    if state == "SM404":
        return ItemNotFound(int(detail))
    if state == "SM409":
        info = json.loads(detail)
        return StockShortage(
            int(info["item_id"]), str(info["name"]), int(info["requested"]), int(info["available"])
        )
    return None


# ------------------------------------------------------------------------------- writing


def _events_json(events: Iterable[Event]) -> str:
    return dumps([asdict(event) for event in events]).decode()


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


# The outbox rows carry the event envelope as payload, exactly like stockmanager.events'
# write_events; here they are written by the same statement as the sale itself.
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
      FROM jsonb_array_elements(CAST(:{param} AS jsonb)) WITH ORDINALITY AS ln(e, n)
     ORDER BY ln.n
"""

_INSERT_SALE = text(
    f"""
    WITH header AS (
        INSERT INTO sales.sales
            (id, created_at, updated_at, vendor_id, vendor_username, payment_method)
        VALUES (:sale_id, now(), now(), :vendor_id, :vendor_username, :payment_method)
    ), lines AS ({_LINES_INSERT.format(param="lines")})
    {_OUTBOX_INSERT}
    """
)


async def insert_sale(conn: AsyncConnection, sale: Sale, events: Sequence[Event]) -> None:
    """The header, its lines and the outbox events, in one statement."""
    await conn.execute(
        _INSERT_SALE,
        {
            "sale_id": sale.id,
            "vendor_id": sale.vendor_id,
            "vendor_username": sale.vendor_username,
            "payment_method": sale.payment_method,
            "lines": _lines_json(sale.lines),
            "events": _events_json(events),
        },
    )


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
    ), added AS ({_LINES_INSERT.format(param="added")}
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
            "events": _events_json(events),
        },
    )


# ------------------------------------------------------------------------ idempotency keys


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: bytes
    status: int
    body: bytes


# Takes the key, or takes over an expired record of it. When another transaction holds the
# key uncommitted, this waits for it on the primary key, then returns no row if it committed.
_CLAIM_KEY = text(
    """
    INSERT INTO sales.idempotency_keys AS k
        (user_id, key, request_hash, response_status, response_body)
    VALUES (:user_id, :key, :request_hash, 0, :empty)
    ON CONFLICT (user_id, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = 0,
           response_body = EXCLUDED.response_body, sale_id = NULL, created_at = now()
     WHERE k.created_at < now() - make_interval(secs => :ttl)
    RETURNING 1
    """
)

_STORED_RESPONSE = text(
    """
    SELECT request_hash, response_status, response_body
      FROM sales.idempotency_keys
     WHERE user_id = :user_id AND key = :key
    """
)

_STORE_RESPONSE = text(
    """
    UPDATE sales.idempotency_keys
       SET response_status = :status, response_body = :body, sale_id = :sale_id
     WHERE user_id = :user_id AND key = :key
    """
)

_PURGE_KEYS = text(
    """
    DELETE FROM sales.idempotency_keys
     WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM sales.idempotency_keys
            WHERE created_at < now() - make_interval(secs => :ttl)
            LIMIT :batch))
    """
)


async def claim_idempotency_key(
    conn: AsyncConnection, user_id: int, key: str, request_hash: bytes, ttl_seconds: int
) -> bool:
    row = (
        await conn.execute(
            _CLAIM_KEY,
            {
                "user_id": user_id,
                "key": key,
                "request_hash": request_hash,
                "empty": b"",
                "ttl": ttl_seconds,
            },
        )
    ).first()
    return row is not None


async def stored_response(conn: AsyncConnection, user_id: int, key: str) -> StoredResponse | None:
    row = (await conn.execute(_STORED_RESPONSE, {"user_id": user_id, "key": key})).first()
    if row is None:
        return None
    return StoredResponse(bytes(row.request_hash), row.response_status, bytes(row.response_body))


async def store_response(
    conn: AsyncConnection, user_id: int, key: str, *, status: int, body: bytes, sale_id: int | None
) -> None:
    await conn.execute(
        _STORE_RESPONSE,
        {"user_id": user_id, "key": key, "status": status, "body": body, "sale_id": sale_id},
    )


async def purge_idempotency_keys(conn: AsyncConnection, ttl_seconds: int, batch: int) -> int:
    result = await conn.execute(_PURGE_KEYS, {"ttl": ttl_seconds, "batch": batch})
    return int(result.rowcount or 0)


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


# ------------------------------------------------------------------------------- reading


def _fold(value: Any) -> Any:
    return func.sales.search_fold(value)


def _contains(column: Any, term: str) -> Any:
    return _fold(column).like(_fold(like_contains(term)), escape=LIKE_ESCAPE)


def _filtered(query: Select[Any], filters: SaleFilters) -> Select[Any]:
    if filters.only_vendor_id is not None:
        query = query.where(sales.c.vendor_id == filters.only_vendor_id)
    if filters.start is not None:
        query = query.where(sales.c.created_at >= filters.start)
    if filters.end is not None:
        query = query.where(sales.c.created_at < filters.end)
    if filters.product:
        query = query.where(
            select(sale_lines.c.id)
            .where(
                sale_lines.c.sale_id == sales.c.id,
                _contains(sale_lines.c.item_name, filters.product),
            )
            .exists()
        )
    if filters.vendedor:
        matching_users = select(users_directory.c.id).where(
            or_(
                _contains(users_directory.c.username, filters.vendedor),
                _contains(users_directory.c.email, filters.vendedor),
            )
        )
        query = query.where(
            or_(
                _contains(sales.c.vendor_username, filters.vendedor),
                sales.c.vendor_id.in_(matching_users),
            )
        )
    return query


async def count_sales(conn: AsyncConnection, filters: SaleFilters) -> int:
    query = _filtered(select(func.count()).select_from(sales), filters)
    return int(await conn.scalar(query) or 0)


async def list_sales(
    conn: AsyncConnection, filters: SaleFilters, *, offset: int, limit: int
) -> list[Sale]:
    headers = (
        await conn.execute(
            _filtered(select(sales), filters)
            .order_by(sales.c.created_at.desc(), sales.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    lines = await _lines_of(conn, [row.id for row in headers])
    return [_sale(row, lines.get(row.id, ())) for row in headers]


async def get_sale(
    conn: AsyncConnection, sale_id: int, *, only_vendor_id: int | None
) -> Sale | None:
    query = select(sales).where(sales.c.id == sale_id)
    if only_vendor_id is not None:
        query = query.where(sales.c.vendor_id == only_vendor_id)
    header = (await conn.execute(query)).first()
    if header is None:
        return None
    lines = await _lines_of(conn, [sale_id])
    return _sale(header, lines.get(sale_id, ()))


async def _lines_of(conn: AsyncConnection, sale_ids: list[int]) -> dict[int, list[SaleLine]]:
    if not sale_ids:
        return {}
    rows = (
        await conn.execute(
            select(
                sale_lines.c.sale_id,
                sale_lines.c.item_id,
                sale_lines.c.item_name,
                sale_lines.c.quantity,
                sale_lines.c.unit_price,
            )
            .where(sale_lines.c.sale_id.in_(sale_ids))
            .order_by(sale_lines.c.sale_id, sale_lines.c.id)
        )
    ).all()
    grouped: dict[int, list[SaleLine]] = {}
    for row in rows:
        grouped.setdefault(row.sale_id, []).append(
            SaleLine(row.item_id, row.item_name, row.quantity, row.unit_price)
        )
    return grouped


def _sale(row: Any, lines: Iterable[SaleLine]) -> Sale:
    return Sale(
        id=row.id,
        sold_at=row.created_at,
        vendor_id=row.vendor_id,
        vendor_username=row.vendor_username,
        payment_method=row.payment_method,
        lines=tuple(lines),
    )
