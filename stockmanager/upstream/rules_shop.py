"""Rules for upstream products, sales and sale lines (report.RULES names them)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from stockmanager.upstream.records import LineRecord, ProductRecord, SaleRecord
from stockmanager.upstream.report import Report
from stockmanager.upstream.source import UpstreamFile
from stockmanager.upstream.values import (
    CENT,
    INT_MAX,
    MONEY_MAX,
    Money,
    as_int,
    as_money,
    as_text,
    calendar_date,
    exact_money,
    local_time,
)

NAME_MAX = 25
DESCRIPTION_MAX = 200
BARCODE_MAX = 20
PAYMENT_MAX = 30
DEFAULT_MIN_QUANTITY = 5
DEFAULT_PAYMENT = "Efectivo"
UNKNOWN_SELLER = "desconocido"
ZERO = Decimal("0.00")

ITEM_COLUMNS = {
    "id": None,
    "barrs_code": None,
    "name": "",
    "description": "",
    "quantity": 0,
    "min_quantity": DEFAULT_MIN_QUANTITY,
    "price": None,
    "expiration_date": None,
    "status": 1,
    "created_at": None,
    "updated_at": None,
}


def _shortened(report: Report, pid: int, field: str, text: str, limit: int) -> str:
    if len(text) > limit:
        report.problem("text_too_long", "products", pid, f"{field} cut to {limit} characters")
        return text[:limit]
    return text


def read_products(
    file: UpstreamFile, report: Report, tz: ZoneInfo, now: datetime
) -> list[ProductRecord]:
    counts = report.counts["products"]
    products: list[ProductRecord] = []
    barcodes: set[str] = set()
    for row in file.rows("items", ITEM_COLUMNS):
        counts.read += 1
        pid = as_int(row[0])
        if pid is None:
            counts.skipped += 1
            continue
        barcode = (as_text(row[1]) or "").strip() or None
        if barcode is not None and (len(barcode) > BARCODE_MAX or barcode in barcodes):
            report.problem("invalid_barcode", "products", pid, repr(barcode))
            barcode = None
        if barcode is not None:
            barcodes.add(barcode)
        name = _shortened(report, pid, "name", (as_text(row[2]) or "").strip(), NAME_MAX)
        description = _shortened(report, pid, "description", as_text(row[3]) or "", DESCRIPTION_MAX)
        quantity = as_int(row[4])
        if quantity is None or quantity > INT_MAX:
            report.problem("invalid_number", "products", pid, f"quantity {row[4]!r} -> 0")
            quantity = 0
        elif quantity < 0:
            report.problem("negative_stock", "products", pid, f"quantity {quantity} -> 0")
            quantity = 0
        minimum = as_int(row[5])
        if minimum is None or not 0 <= minimum <= INT_MAX:
            report.problem("invalid_number", "products", pid, f"min_quantity {row[5]!r} -> 5")
            minimum = DEFAULT_MIN_QUANTITY
        price = as_money(row[6])
        if price is None:
            report.problem("invalid_number", "products", pid, f"price {row[6]!r} -> 0")
            price = ZERO
        elif price < 0:
            report.problem("negative_price", "products", pid, f"price {price} -> 0")
            price = ZERO
        expiration = calendar_date(row[7])
        if expiration is None and (as_text(row[7]) or "").strip():
            report.problem("invalid_date", "products", pid, f"expiration_date {row[7]!r} -> none")
        status = as_int(row[8])
        if status not in (0, 1):
            report.problem("invalid_status", "products", pid, f"status {row[8]!r} -> 1")
            status = 1
        created = local_time(row[9], tz)
        updated = local_time(row[10], tz)
        if created is None or updated is None:
            report.problem(
                "invalid_date", "products", pid, f"created/updated {row[9]!r}/{row[10]!r} -> now"
            )
        products.append(
            ProductRecord(
                upstream_id=pid,
                barcode=barcode,
                name=name or f"Producto {pid}"[:NAME_MAX],
                description=description,
                quantity=quantity,
                min_quantity=minimum,
                price=price,
                expiration_date=expiration,
                status=status,
                created_at=created or now,
                updated_at=updated or created or now,
            )
        )
    return products


SALE_COLUMNS = {"id": None, "date": None, "vendor_id": None, "payment_method": "", "vendedor": ""}
LINE_COLUMNS = {"id": None, "sell_id": None, "item_id": None, "quantity": None, "price": None}


def read_sales(
    file: UpstreamFile,
    report: Report,
    tz: ZoneInfo,
    now: datetime,
    products: list[ProductRecord],
    user_ids: set[int],
) -> tuple[list[SaleRecord], list[LineRecord]]:
    """Sales with their lines; appends a disabled placeholder to `products` for each product
    that lines point at but the file no longer has."""
    sales_counts, line_counts = report.counts["sales"], report.counts["sale_lines"]
    by_id = {p.upstream_id: p for p in products}
    headers: dict[int, SaleRecord] = {}
    skipped_sales: set[int] = set()  # their lines are skipped with them, counted only
    for row in file.rows("sells", SALE_COLUMNS):
        sales_counts.read += 1
        sid = as_int(row[0])
        sold_at = local_time(row[1], tz)
        if sid is None or sold_at is None:
            report.problem("invalid_date", "sales", sid, f"date {row[1]!r}: skipped with its lines")
            sales_counts.skipped += 1
            if sid is not None:
                skipped_sales.add(sid)
            continue
        vendor = as_int(row[2])
        legacy = (as_text(row[4]) or "").strip()
        if vendor not in user_ids:
            report.problem("missing_seller", "sales", sid, f"vendor_id {row[2]!r}")
            vendor = None
        payment = (as_text(row[3]) or "").strip() or DEFAULT_PAYMENT
        if len(payment) > PAYMENT_MAX:
            report.problem("text_too_long", "sales", sid, "payment_method cut to 30 characters")
            payment = payment[:PAYMENT_MAX]
        headers[sid] = SaleRecord(
            upstream_id=sid,
            sold_at=sold_at,
            vendor_upstream_id=vendor,
            vendor_name=legacy if legacy and legacy != "unknown" else UNKNOWN_SELLER,
            payment_method=payment,
        )

    # (sale, item) -> [quantity, unit price, total of merged lines or None], in file order.
    merged: dict[tuple[int, int], list[Any]] = {}
    missing: dict[int, list[Money]] = defaultdict(list)  # deleted product -> line prices
    for lid, sid, item, quantity, raw_price in file.rows("details", LINE_COLUMNS):
        line_counts.read += 1
        # Fast paths first: a well-formed row is ints and a float (this loop sees every line).
        if type(sid) is not int:
            sid = as_int(sid)
        if type(item) is not int:
            item = as_int(item)
        if sid not in headers or item is None:
            if sid not in skipped_sales:
                report.problem("orphan_line", "sale_lines", as_int(lid), f"sell_id {sid!r}")
            line_counts.skipped += 1
            continue
        if type(quantity) is not int:
            quantity = as_int(quantity)
        if quantity is None or quantity <= 0:
            report.problem("invalid_line", "sale_lines", as_int(lid), f"quantity {quantity!r}")
            line_counts.skipped += 1
            continue
        price: Money | None = raw_price if type(raw_price) is float else as_money(raw_price)
        if price is None or not 0 <= price <= MONEY_MAX:
            product = by_id.get(item)
            fallback = product.price if product is not None else ZERO
            rule = "negative_price" if price is not None and price < 0 else "invalid_number"
            report.problem(rule, "sale_lines", as_int(lid), f"price {raw_price!r} -> {fallback}")
            price = fallback
        if item not in by_id:
            missing[item].append(price)
        key = (sid, item)
        entry = merged.get(key)
        if entry is None:
            merged[key] = [quantity, price, None]
            continue
        report.problem("merged_lines", "sale_lines", as_int(lid), f"sale {sid}, product {item}")
        line_counts.skipped += 1  # folded into the first line of the pair
        if entry[2] is None:
            entry[2] = exact_money(entry[1]) * entry[0]
        entry[0] += quantity
        entry[2] += exact_money(price) * quantity

    for item, prices in missing.items():
        report.problem("deleted_product", "products", item, f"{len(prices)} sale lines point at it")
        placeholder = ProductRecord(
            upstream_id=item,
            barcode=None,
            name=f"Producto eliminado #{item}"[:NAME_MAX],
            description="",
            quantity=0,
            min_quantity=0,
            price=exact_money(prices[-1]),
            expiration_date=None,
            status=0,
            created_at=now,
            updated_at=now,
            placeholder=True,
        )
        products.append(placeholder)
        by_id[item] = placeholder

    lines: list[LineRecord] = []
    with_lines: set[int] = set()
    for (sid, item), (qty, price, total) in merged.items():
        lines.append(
            LineRecord(
                sale_upstream_id=sid,
                item_upstream_id=item,
                item_name=by_id[item].name,
                quantity=qty,
                unit_price=price if total is None else (total / qty).quantize(CENT, ROUND_HALF_UP),
            )
        )
        with_lines.add(sid)
    sales = []
    for sid, sale in headers.items():
        if sid in with_lines:
            sales.append(sale)
        else:
            report.problem("sale_without_lines", "sales", sid, "no valid line")
            sales_counts.skipped += 1
    return sales, lines
