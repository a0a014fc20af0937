"""The SQL of the CSV import: set-based, one COPY and a few statements per chunk whatever the
file's size (services/products/importer.py drives it, in one transaction)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.products.repository import PRODUCT_COLUMNS, driver_connection
from services.products.validation import DEFAULT_MIN_QUANTITY

IMPORT_STAGING = "import_rows"
_IMPORT_COLUMNS = "barcode, name, description, quantity, min_quantity, price, expiration_date"
_CHANGES_STAGING = "import_changes"


async def _copy_into(
    conn: AsyncConnection, table: str, columns: str, rows: Iterable[Sequence[Any]]
) -> None:
    """`CREATE TEMP TABLE table (columns)` (dropped at commit) filled by one COPY stream."""
    driver = await driver_connection(conn)
    await driver.execute(f"CREATE TEMP TABLE {table} ({columns}) ON COMMIT DROP")
    await _copy(driver, table, rows)


async def _copy(
    driver: psycopg.AsyncConnection[Any], table: str, rows: Iterable[Sequence[Any]]
) -> None:
    async with driver.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)


# COPY's text format: these four characters are written as backslash escapes, NULL as \N.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def copy_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows (ints, text, Decimals, dates or None) in COPY's text format, for `import_chunk`.

    The import formats each chunk in its worker thread, where it overlaps PostgreSQL writing
    the previous chunk; sending rows one by one (`write_row`) on the event loop left
    PostgreSQL idle for 0.5-0.75 s of a 50,000-row import (bench/results/csv.md).
    """
    lines = []
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append("\\N")
                continue
            field = str(value)
            fields.append(field.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(field) else field)
        lines.append("\t".join(fields))
    lines.append("")
    return "\n".join(lines)


# A staged row: (line, *`_IMPORT_COLUMNS`); None: optional cell not given. No key: a file's
# barcodes are unique (csvio rejects a repeated one), and keeping a temporary index of them
# cost 0.08 s of PostgreSQL CPU per 50,000 rows.
_STAGED_COLUMNS = (
    "line integer NOT NULL, barcode text NOT NULL, name text NOT NULL,"
    " description text, quantity integer NOT NULL, min_quantity integer,"
    " price numeric(12,2) NOT NULL, expiration_date date"
)
_IMPORT_CHUNK = "import_chunk"


async def begin_import(conn: AsyncConnection) -> None:
    """The import's temporary tables (dropped at commit): `import_chunk` holds the rows being
    written, `IMPORT_STAGING` collects those whose barcode already exists."""
    driver = await driver_connection(conn)
    for table in (IMPORT_STAGING, _IMPORT_CHUNK):
        await driver.execute(f"CREATE TEMP TABLE {table} ({_STAGED_COLUMNS}) ON COMMIT DROP")


# One pass over the chunk, one probe of the catalogue's barcodes per row: rows whose barcode
# exists are put aside in IMPORT_STAGING, the others are inserted (ids in the file's order, as
# row-by-row inserts gave them). Both parts see the catalogue in one snapshot, so a product
# another transaction creates meanwhile makes the INSERT fail on the barcode instead of
# leaving its row neither staged nor inserted. (Two statements, one probe each, cost 0.15 s
# more PostgreSQL CPU per 50,000 existing rows.)
_WRITE_CHUNK = (
    "WITH chunk AS MATERIALIZED ("
    " SELECT s.*, EXISTS (SELECT 1 FROM products.items AS it WHERE it.barcode = s.barcode)"
    f" AS known FROM {_IMPORT_CHUNK} AS s),"
    f" staged AS (INSERT INTO {IMPORT_STAGING}"
    f" SELECT line, {_IMPORT_COLUMNS} FROM chunk WHERE known)"
    f" INSERT INTO products.items ({_IMPORT_COLUMNS}, status)"
    " SELECT s.barcode, s.name, coalesce(s.description, ''), s.quantity,"
    f" coalesce(s.min_quantity, {DEFAULT_MIN_QUANTITY}), s.price, s.expiration_date, 1"
    " FROM chunk AS s WHERE NOT s.known ORDER BY s.line RETURNING id"
)
_RECORD_INITIAL_STOCK = "SELECT products.record_initial_stock(%s::bigint[], %s, %s, %s, %s)"


async def import_chunk(
    conn: AsyncConnection,
    copy_rows: str,
    *,
    reason: str,
    reference: str | None,
    actor_id: int | None,
    actor_username: str | None,
) -> int:
    """Write some of the file's valid rows (`begin_import` first; `copy_rows` in `copy_text`'s
    format, `_STAGED_COLUMNS`' order): those whose barcode exists
    are kept in `IMPORT_STAGING` for later; the others are inserted as new products with their
    stock, which `products.record_initial_stock` (migration products_0004) records in the
    ledger. Returns how many products were created."""
    driver = await driver_connection(conn)
    async with driver.cursor().copy(f"COPY {_IMPORT_CHUNK} FROM STDIN") as copy:
        await copy.write(copy_rows)
    ids = [row[0] for row in await (await driver.execute(_WRITE_CHUNK)).fetchall()]
    if ids:
        await driver.execute(
            _RECORD_INITIAL_STOCK, (ids, reason, reference, actor_id, actor_username)
        )
    await driver.execute(f"TRUNCATE {_IMPORT_CHUNK}")
    return len(ids)


_LOCK_STAGED = text(
    f"SELECT {', '.join(f'it.{c.name}' for c in PRODUCT_COLUMNS)}"
    f" FROM products.items AS it JOIN {IMPORT_STAGING} AS s ON s.barcode = it.barcode"
    " ORDER BY it.id FOR UPDATE OF it"
)


async def lock_staged_products(conn: AsyncConnection) -> dict[str, Any]:
    """The products the staged rows name (by barcode), locked in id order (the stock
    function's order: no deadlocks), by barcode."""
    return {row.barcode: row for row in (await conn.execute(_LOCK_STAGED)).all()}


async def update_products_from(
    conn: AsyncConnection, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Set `columns` on many products in one statement; each row is (id, *values in `columns`
    order), streamed by COPY."""
    definitions = {
        "name": "text",
        "description": "text",
        "min_quantity": "integer",
        "price": "numeric(12,2)",
        "expiration_date": "date",
    }
    await _copy_into(
        conn,
        _CHANGES_STAGING,
        "id bigint PRIMARY KEY, " + ", ".join(f"{c} {definitions[c]}" for c in columns),
        rows,
    )
    assignments = ", ".join(f"{column} = c.{column}" for column in columns)
    await conn.execute(
        text(
            f"UPDATE products.items AS it SET {assignments}, updated_at = now()"
            f" FROM {_CHANGES_STAGING} AS c WHERE it.id = c.id"
        )
    )
