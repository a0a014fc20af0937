"""Wire shapes of the sales service: request parsing (400s with upstream messages) and the
response bodies of reference §2.2, field for field.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.sales.model import (
    BarcodeOrder,
    RequestedLine,
    Sale,
    SaleEdit,
    SaleFilters,
    SaleLine,
    SaleOrder,
)
from stockmanager.errors import ValidationFailed
from stockmanager.timefmt import local_str, parse_date_or_timestamp

DEFAULT_PAYMENT_METHOD = "Efectivo"
MAX_QUANTITY = 2_147_483_647  # the stock column is a PostgreSQL integer
MAX_ID = 9_223_372_036_854_775_807
MAX_BARCODE = 64
MAX_FILTER = 100
_INTEGER_TEXT = re.compile(r"^\s*[+-]?\d{1,19}\s*$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ---------------------------------------------------------------------------------- requests


def as_integer(value: Any) -> int | None:
    """An integer from JSON: a number without fraction, or digits in a string (upstream used
    `int()`); booleans, fractions and anything else are not integers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= MAX_ID else None
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        return int(value)
    return None


def parse_payment_method(value: Any, *, default: str | None = DEFAULT_PAYMENT_METHOD) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise ValidationFailed("Método de pago inválido")
    method = value.strip()
    if not 1 <= len(method) <= 30:
        raise ValidationFailed("Método de pago inválido")
    return method


def parse_lines(items: Any, *, max_lines: int) -> tuple[RequestedLine, ...]:
    """`items: [{item_id, quantity}]` → one line per product, duplicates summed in order.

    The caller checks that `items` is a non-empty list (each endpoint has its own message).
    """
    if len(items) > max_lines:
        raise ValidationFailed(f"Demasiados productos en una venta (máximo {max_lines})")
    merged: dict[int, int] = {}
    for index, raw in enumerate(items):
        item_id = quantity = None
        if isinstance(raw, dict):
            item_id = as_integer(raw.get("item_id"))
            quantity = as_integer(raw.get("quantity"))
        if (
            item_id is None
            or quantity is None
            or not 1 <= item_id <= MAX_ID
            or not 1 <= quantity <= MAX_QUANTITY
            or merged.get(item_id, 0) + quantity > MAX_QUANTITY
        ):
            raise ValidationFailed(f"item_id/cantidad inválidos en índice {index}")
        merged[item_id] = merged.get(item_id, 0) + quantity
    return tuple(RequestedLine(item_id, quantity) for item_id, quantity in merged.items())


def parse_bulk_sale(body: dict[str, Any], *, max_lines: int) -> SaleOrder:
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ValidationFailed("Formato inválido: items[] requerido")
    lines = parse_lines(items, max_lines=max_lines)
    return SaleOrder(lines=lines, payment_method=parse_payment_method(body.get("payment_method")))


def parse_barcode_sale(body: dict[str, Any]) -> BarcodeOrder:
    raw_barcode = body.get("barcode")
    if raw_barcode is None or "quantity" not in body:
        raise ValidationFailed("Faltan campos requeridos")
    if isinstance(raw_barcode, bool) or not isinstance(raw_barcode, str | int):
        raise ValidationFailed("Código de barras inválido")
    barcode = str(raw_barcode).strip()
    if not barcode or len(barcode) > MAX_BARCODE:
        raise ValidationFailed("Código de barras inválido")
    quantity = as_integer(body.get("quantity"))
    if quantity is None or not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationFailed("Cantidad inválida")
    return BarcodeOrder(
        barcode=barcode,
        quantity=quantity,
        payment_method=parse_payment_method(body.get("payment_method")),
    )


def parse_sale_edit(body: dict[str, Any], *, max_lines: int) -> SaleEdit:
    items = body.get("items")
    if not isinstance(items, list):
        raise ValidationFailed("Items inválidos")
    if not items:
        raise ValidationFailed("La venta debe tener al menos un producto")
    lines = parse_lines(items, max_lines=max_lines)
    vendor_id: int | None = None
    if "vendor_id" in body:
        raw = body["vendor_id"]
        if raw is None or raw is False or raw == 0 or raw == "":
            raise ValidationFailed("Faltan campos requeridos")
        vendor_id = as_integer(raw)
        if vendor_id is None or not 1 <= vendor_id <= MAX_ID:
            raise ValidationFailed("Vendedor inválido")
    payment_method: str | None = None
    if "payment_method" in body:
        raw = body["payment_method"]
        if raw is None or raw == "":
            raise ValidationFailed("Faltan campos requeridos")
        payment_method = parse_payment_method(raw, default=None)
    return SaleEdit(lines=lines, vendor_id=vendor_id, payment_method=payment_method)


def parse_filters(params: dict[str, str], tz: ZoneInfo) -> SaleFilters:
    """`from`/`to` are business-time-zone dates (whole days) or ISO timestamps; empty = absent."""
    start = end = None
    raw_from = (params.get("from") or "").strip()
    raw_to = (params.get("to") or "").strip()
    try:
        if raw_from:
            start = parse_date_or_timestamp(raw_from, tz, end=False)
        if raw_to:
            end = parse_date_or_timestamp(raw_to, tz, end=True)
            if not _DATE_ONLY.match(raw_to):
                # A timestamp bound is inclusive; the query's upper bound is exclusive.
                end = end + timedelta(microseconds=1)
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed("Fecha inválida: use YYYY-MM-DD") from exc
    product = (params.get("product") or "").strip()[:MAX_FILTER] or None
    vendedor = (params.get("vendedor") or "").strip()[:MAX_FILTER] or None
    return SaleFilters(start=start, end=end, product=product, vendedor=vendedor)


# --------------------------------------------------------------------------------- responses


def line_payload(line: SaleLine) -> dict[str, Any]:
    """A line as `sale.created` items and the bulk response carry it."""
    return {
        "item_id": line.item_id,
        "name": line.name,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "subtotal": line.subtotal,
    }


def bulk_sale_created(sale: Sale) -> dict[str, Any]:
    return {
        "ok": True,
        "sale_id": sale.id,
        "items": [line_payload(line) for line in sale.lines],
        "total": sale.total,
    }


def barcode_sale_created(sale: Sale) -> dict[str, Any]:
    line = sale.lines[0]
    return {
        "message": f"Venta registrada: {line.name} x{line.quantity}",
        "product": line.name,
        "quantity": line.quantity,
        "total": sale.total,
    }


def sale_summary(sale: Sale, tz: ZoneInfo) -> dict[str, Any]:
    """An element of the history list."""
    return {
        "id": sale.id,
        "date": local_str(sale.sold_at, tz),
        "products": [
            {"name": line.name, "quantity": line.quantity, "price": line.unit_price}
            for line in sale.lines
        ],
        "total_quantity": sale.total_quantity,
        "total": sale.total,
        "vendedor": sale.vendor_username,
        "vendor_id": sale.vendor_id,
        "payment_method": sale.payment_method,
    }


def sale_detail(sale: Sale, tz: ZoneInfo) -> dict[str, Any]:
    """GET /api/sales/<id>: the list element without `total_quantity` (as upstream)."""
    body = sale_summary(sale, tz)
    del body["total_quantity"]
    return body


def sale_edit_view(sale: Sale, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": sale.id,
        "date": local_str(sale.sold_at, tz),
        "vendor_id": sale.vendor_id,
        "vendedor": sale.vendor_username or "unknown",
        "payment_method": sale.payment_method,
        "items": [
            {
                "item_id": line.item_id,
                "quantity": line.quantity,
                "price": line.unit_price,
                "name": line.name,
            }
            for line in sale.lines
        ],
    }


SALE_UPDATED = {"message": "Venta actualizada exitosamente"}
