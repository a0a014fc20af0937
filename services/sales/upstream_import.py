"""`stockmanager import-upstream`: the sales schema's part (docs/upgrading-from-stockmanager.md).

Upstream sales come over with their original times, sellers, payment methods and lines (the
unit price each line was sold at). History only: imported sales move no stock, because upstream's
stock already reflects them and arrives as it is (products' part). Runs in the import's one
transaction; never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from stockmanager.upstream import staging
from stockmanager.upstream.records import LineRecord, SaleRecord
from stockmanager.upstream.report import Report

SCHEMA = "sales"
KIND = "sale"
STAGING = "upstream_sales"


async def import_sales(
    conn: psycopg.AsyncConnection[Any],
    source: str,
    sales: Sequence[SaleRecord],
    lines: Sequence[LineRecord],
    users: Mapping[int, tuple[int, str, str]],
    items: Mapping[int, int],
    report: Report,
) -> tuple[dict[int, int], set[int]]:
    """Insert the sales not imported before. Returns upstream sale id -> local id (every sale
    of the file) and the upstream ids of the sales inserted now.

    `users`: upstream user id -> (local id, username, role); `items`: upstream product id ->
    local product id (every product the lines name is there: deleted ones were recreated).
    """
    await staging.lock(conn, "sales.sales")
    await staging.stage(
        conn,
        STAGING,
        f"{staging.id_columns()}, sold_at timestamptz, vendor_id bigint, vendor_username text,"
        " payment_method text",
        (
            (
                s.upstream_id,
                None,
                None,
                s.sold_at,
                *(
                    users[s.vendor_upstream_id][:2]
                    if s.vendor_upstream_id is not None and s.vendor_upstream_id in users
                    else (0, s.vendor_name)
                ),
                s.payment_method,
            )
            for s in sales
        ),
    )
    await staging.mark_already(conn, STAGING, SCHEMA, source, KIND)
    await staging.assign_ids(conn, STAGING, "sales.sales", report, "sales")
    await conn.execute(
        f"""
        INSERT INTO sales.sales (id, created_at, updated_at, vendor_id, vendor_username,
                                 payment_method)
        SELECT local_id, sold_at, sold_at, vendor_id, vendor_username, payment_method
          FROM {STAGING} WHERE state IN ('new', 'renumbered')
        """
    )
    cursor = await conn.execute(f"SELECT upstream_id, local_id, state FROM {STAGING}")
    rows = await cursor.fetchall()
    ids = {int(upstream): int(local) for upstream, local, _ in rows}
    inserted = {int(upstream) for upstream, _, state in rows if state in ("new", "renumbered")}
    # Only the lines of the sales inserted now (a second run writes none of them).
    written = await _copy_lines(
        conn,
        (
            (
                ids[line.sale_upstream_id],
                items[line.item_upstream_id],
                line.item_name,
                line.quantity,
                line.unit_price,
            )
            for line in lines
            if line.sale_upstream_id in inserted
        ),
    )
    lines_counts = report.counts["sale_lines"]
    lines_counts.imported += written
    lines_counts.already += len(lines) - written
    await staging.count_states(conn, STAGING, report, "sales")
    await staging.record_map(conn, STAGING, SCHEMA, source, KIND)
    if written:
        # Fresh planner statistics for what comes right after the import (the metrics rollup
        # rebuild joins every imported line to its sale; without them it plans for few rows).
        await conn.execute("ANALYZE sales.sales, sales.sale_lines")
    return ids, inserted


async def _copy_lines(
    conn: psycopg.AsyncConnection[Any], rows: Iterable[tuple[int, int, str, int, Any]]
) -> int:
    """COPY the lines straight into `sales.sale_lines` (their sales were inserted just before;
    the line ids come from the identity). Returns how many were written.

    The foreign key to `sales.sales` is dropped for the COPY and added back before it returns,
    exactly as it was defined (pg_get_constraintdef): adding it checks every line in one join
    instead of one key lookup and row lock per line (half of the CPU of the COPY otherwise).
    The same rows end up there or the import fails and rolls back, the constraint included. The
    price: from here to the import's commit, `sales.sales` and `sales.sale_lines` are locked
    for readers too (ACCESS EXCLUSIVE), not only for writers.
    """
    cursor = await conn.execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'sales.sale_lines'::regclass AND contype = 'f'
         ORDER BY conname
        """
    )
    foreign_keys = await cursor.fetchall()
    copy_sql = (
        "COPY sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price) FROM STDIN"
    )
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0  # nothing to write: no lock taken beyond the import's own
    for name, _ in foreign_keys:
        await conn.execute(
            sql.SQL("ALTER TABLE sales.sale_lines DROP CONSTRAINT {}").format(sql.Identifier(name))
        )
    async with conn.cursor().copy(copy_sql) as copy:
        await copy.write_row(first)
        written = 1
        for row in rows:
            await copy.write_row(row)
            written += 1
    for name, definition in foreign_keys:
        await conn.execute(
            sql.SQL("ALTER TABLE sales.sale_lines ADD CONSTRAINT {} {}").format(
                sql.Identifier(name), sql.SQL(definition)
            )
        )
    return written
