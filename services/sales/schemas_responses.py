"""Response bodies of the sales service (reference §2.2, field for field).

The endpoints build plain dicts (the fast path: no model instances per request) and declare
the models below as `response_model`, which is what the OpenAPI document shows and what the
tests check every real response against. Money is a JSON number with at most 2 decimals.
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from services.sales.model import Sale, SaleLine
from stockmanager.timefmt import local_str

DATE_DESCRIPTION = "Local time in the business time zone, `YYYY-MM-DD HH:MM:SS`."
MONEY_DESCRIPTION = "Amount rounded to 2 decimals."


# -------------------------------------------------------------------------------- the models


class CreatedLine(BaseModel):
    item_id: int
    name: str = Field(description="The product's name at the time of the sale.")
    quantity: int
    unit_price: float = Field(description="The product's price at the time of the sale.")
    subtotal: float = Field(description="unit_price × quantity, rounded to 2 decimals.")


class BulkSaleCreated(BaseModel):
    ok: Literal[True]
    sale_id: int
    items: list[CreatedLine] = Field(description="One line per product, in request order.")
    total: float = Field(description="The sum of the subtotals.")


class BarcodeSaleCreated(BaseModel):
    message: str = Field(examples=["Venta registrada: Leche entera 1L x2"])
    product: str
    quantity: int
    total: float = Field(description=MONEY_DESCRIPTION)


class SoldProduct(BaseModel):
    name: str
    quantity: int
    price: float = Field(description="Unit price at the time of the sale.")


class SaleDetail(BaseModel):
    id: int
    date: str = Field(description=DATE_DESCRIPTION, examples=["2026-11-26 20:15:03"])
    products: list[SoldProduct]
    total: float = Field(description=MONEY_DESCRIPTION)
    vendedor: str = Field(description="The seller's username at the time of the sale.")
    vendor_id: int
    payment_method: str


class SaleSummary(SaleDetail):
    total_quantity: int


class SalePage(BaseModel):
    data: list[SaleSummary] = Field(description="Newest first (date, then id, descending).")
    total: int = Field(description="Sales matching the filters.")
    page: int
    pages: int = Field(description="At least 1.")
    limit: int


class EditableLine(BaseModel):
    item_id: int
    quantity: int
    price: float = Field(description="Unit price at the time of the sale.")
    name: str


class SaleEditView(BaseModel):
    id: int
    date: str = Field(description=DATE_DESCRIPTION)
    vendor_id: int
    vendedor: str
    payment_method: str
    items: list[EditableLine]


class SaleUpdated(BaseModel):
    message: Literal["Venta actualizada exitosamente"]


# ------------------------------------------------------------------------------ the builders


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
