"""`stockmanager import-upstream`: the sales schema's part (docs/upgrading-from-stockmanager.md).

Upstream sales come over with their original times, sellers, payment methods and lines (the
unit price each line was sold at). History only: imported sales move no stock, because upstream's
stock already reflects them and arrives as it is (products' part). Runs in the import's one
transaction; never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

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
    # Only the lines of the sales inserted now (a second run stages none of them).
    await staging.stage(
        conn,
        "upstream_lines",
        "sale_id bigint, item_id bigint, item_name text, quantity integer,"
        " unit_price numeric(12,2)",
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
        analyze=False,  # read once, in full
    )
    cursor = await conn.execute(
        """
        INSERT INTO sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price)
        SELECT sale_id, item_id, item_name, quantity, unit_price FROM upstream_lines
        """
    )
    lines_counts = report.counts["sale_lines"]
    lines_counts.imported += cursor.rowcount
    lines_counts.already += len(lines) - cursor.rowcount
    await staging.count_states(conn, STAGING, report, "sales")
    await staging.record_map(conn, STAGING, SCHEMA, source, KIND)
    return ids, inserted
