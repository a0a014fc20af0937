"""`stockmanager import-upstream`: the products schema's part (docs/upgrading-from-stockmanager.md).

Upstream products are merged into local ones by barcode (the local product, stock included, is
left as it is); the rest are inserted with their stock and its first ledger row (reason
`import`, `products.record_initial_stock`), so the ledger explains every unit. Runs in the
import's one transaction; never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from stockmanager.contracts.stock import REFERENCE_MAX, StockReason
from stockmanager.upstream import staging
from stockmanager.upstream.records import Actor, ProductRecord
from stockmanager.upstream.report import Report

SCHEMA = "products"
KIND = "item"
STAGING = "upstream_items"
IMPORT_REASON: StockReason = "import"


async def import_products(
    conn: psycopg.AsyncConnection[Any],
    source: str,
    products: Sequence[ProductRecord],
    actor: Actor,
    report: Report,
) -> dict[int, int]:
    """Upstream product id -> local product id, for every product of the file."""
    await staging.lock(conn, "products.items")
    await staging.stage(
        conn,
        STAGING,
        f"{staging.id_columns()}, barcode text, name text, description text, quantity integer,"
        " min_quantity integer, price numeric(12,2), expiration_date date, status smallint,"
        " created_at timestamptz, updated_at timestamptz",
        (
            (
                p.upstream_id,
                None,
                None,
                p.barcode,
                p.name,
                p.description,
                p.quantity,
                p.min_quantity,
                p.price,
                p.expiration_date,
                p.status,
                p.created_at,
                p.updated_at,
            )
            for p in products
        ),
    )
    await staging.mark_already(conn, STAGING, SCHEMA, source, KIND)
    cursor = await conn.execute(
        f"""
        UPDATE {STAGING} s SET local_id = i.id, state = 'matched'
          FROM products.items i
         WHERE s.state IS NULL AND s.barcode IS NOT NULL AND i.barcode = s.barcode
        RETURNING s.upstream_id, s.barcode, i.id
        """
    )
    for upstream_id, barcode, local_id in sorted(await cursor.fetchall()):
        report.problem(
            "barcode_matched", "products", upstream_id, f"barcode {barcode} = local #{local_id}"
        )
    await staging.assign_ids(conn, STAGING, "products.items", report, "products")
    # New products are inserted with their stock, and `products.record_initial_stock` writes
    # the ledger row the stock function would have written (migration products_0004: moving
    # the stock of empty rows would write every new row twice, in all of its indexes).
    cursor = await conn.execute(
        f"""
        INSERT INTO products.items (id, barcode, name, description, quantity, min_quantity,
                                    price, expiration_date, status, created_at, updated_at)
        SELECT local_id, barcode, name, description, quantity, min_quantity, price,
               expiration_date, status, created_at, updated_at
          FROM {STAGING} WHERE state IN ('new', 'renumbered')
         ORDER BY local_id
        RETURNING id
        """
    )
    new_ids = [int(row[0]) for row in await cursor.fetchall()]
    if new_ids:
        await conn.execute(
            "SELECT products.record_initial_stock(CAST(%s AS bigint[]), %s, %s, %s, %s)",
            (
                new_ids,
                IMPORT_REASON,
                f"upstream StockManager {source}"[:REFERENCE_MAX],
                actor.user_id,
                actor.username,
            ),
        )
    await staging.count_states(conn, STAGING, report, "products")
    await staging.record_map(conn, STAGING, SCHEMA, source, KIND)
    return await staging.id_map(conn, STAGING)
