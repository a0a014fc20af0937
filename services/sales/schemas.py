"""Wire shapes of the sales service.

Requests are Pydantic models validated by the kernel's contract layer (`ContractRoute`): each
field refuses a bad value with upstream's exact message, and the fields are declared in the
order upstream checked them (the first failure is the one the client sees). Responses are
built as plain dicts on the hot path and documented by the models in `schemas_responses.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, PlainValidator, WithJsonSchema, model_validator

from services.sales.model import (
    BarcodeOrder,
    RequestedLine,
    SaleEdit,
    SaleFilters,
    SaleOrder,
)
from services.sales.settings import sales_settings
from stockmanager.contracts.fields import (
    BIGINT_MAX,
    INT4_MAX,
    INTEGER_JSON_SCHEMA,
    check_storable,
    invalid,
    lenient_int,
)
from stockmanager.contracts.validation import RequestBody
from stockmanager.errors import ValidationFailed
from stockmanager.timefmt import parse_date_or_timestamp

DEFAULT_PAYMENT_METHOD = "Efectivo"
MAX_QUANTITY = INT4_MAX  # the stock column is a PostgreSQL integer
MAX_ID = BIGINT_MAX
MAX_BARCODE = 64
MAX_PAYMENT_METHOD = 30
MAX_FILTER = 100
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

MISSING_FIELDS = "Faltan campos requeridos"
INVALID_PAYMENT_METHOD = "Método de pago inválido"
INVALID_DATE = "Fecha inválida: use YYYY-MM-DD"


# Each field below is an `Annotated` type whose PlainValidator receives the raw JSON value
# (`null` included) and returns the field's value as it is; WithJsonSchema documents it.


# ---------------------------------------------------------------------------- payment method


def _method(value: object) -> str:
    if not isinstance(value, str):
        raise invalid(INVALID_PAYMENT_METHOD)
    method = value.strip()
    if not 1 <= len(method) <= MAX_PAYMENT_METHOD:
        raise invalid(INVALID_PAYMENT_METHOD)
    return check_storable(method)


def _method_or_default(value: object) -> str:
    return DEFAULT_PAYMENT_METHOD if value is None else _method(value)


def _method_change(value: object) -> str:
    if value is None or value == "":
        raise invalid(MISSING_FIELDS)
    return _method(value)


_METHOD_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PAYMENT_METHOD,
    "description": "Trimmed, 1 to 30 characters.",
    "examples": ["Tarjeta"],
}

PaymentMethod = Annotated[
    str,
    PlainValidator(_method_or_default),
    WithJsonSchema(
        {
            **_METHOD_SCHEMA,
            "type": ["string", "null"],
            "description": "Trimmed, 1 to 30 characters; absent or null: `Efectivo`.",
            "default": DEFAULT_PAYMENT_METHOD,
        }
    ),
]
PaymentMethodChange = Annotated[
    str | None,
    PlainValidator(_method_change),
    WithJsonSchema(
        {**_METHOD_SCHEMA, "description": "Trimmed, 1 to 30 characters; absent: unchanged."}
    ),
]


# ------------------------------------------------------------------------------------- lines


def merge_lines(items: list[Any], *, max_lines: int) -> tuple[RequestedLine, ...]:
    """`items: [{item_id, quantity}]` → one line per product, duplicates summed in order."""
    if len(items) > max_lines:
        raise invalid(f"Demasiados productos en una venta (máximo {max_lines})")
    merged: dict[int, int] = {}
    for index, raw in enumerate(items):
        item_id = quantity = None
        if isinstance(raw, dict):
            item_id = lenient_int(raw.get("item_id"))
            quantity = lenient_int(raw.get("quantity"))
        if (
            item_id is None
            or quantity is None
            or not 1 <= item_id <= MAX_ID
            or not 1 <= quantity <= MAX_QUANTITY
            or merged.get(item_id, 0) + quantity > MAX_QUANTITY
        ):
            raise invalid(f"item_id/cantidad inválidos en índice {index}")
        merged[item_id] = merged.get(item_id, 0) + quantity
    return tuple(RequestedLine(item_id, quantity) for item_id, quantity in merged.items())


def _lines(not_a_list: str, empty: str) -> Callable[[object], tuple[RequestedLine, ...]]:
    """`items`: a non-empty list of lines, at most `max_sale_lines` (a service setting)."""

    def check(value: object) -> tuple[RequestedLine, ...]:
        if not isinstance(value, list):
            raise invalid(not_a_list)
        if not value:
            raise invalid(empty)
        return merge_lines(value, max_lines=sales_settings().max_sale_lines)

    return check


LINES_SCHEMA = WithJsonSchema(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "item_id": {**INTEGER_JSON_SCHEMA, "minimum": 1, "maximum": MAX_ID},
                "quantity": {**INTEGER_JSON_SCHEMA, "minimum": 1, "maximum": MAX_QUANTITY},
            },
            "required": ["item_id", "quantity"],
        },
        "minItems": 1,
        "description": (
            "Products and quantities (integers ≥ 1; digit strings and integral floats are "
            "accepted). Duplicate `item_id`s are summed into one line. At most "
            "`STOCKMANAGER_MAX_SALE_LINES` (500) lines."
        ),
    }
)


def _require(data: object, *keys: str, message: str) -> None:
    """Upstream checked the presence of some keys before anything else."""
    if isinstance(data, dict) and any(key not in data for key in keys):
        raise invalid(message)


# ---------------------------------------------------------------------------------- requests

ITEMS_REQUIRED = "Formato inválido: items[] requerido"
BulkLines = Annotated[
    tuple[RequestedLine, ...], PlainValidator(_lines(ITEMS_REQUIRED, ITEMS_REQUIRED)), LINES_SCHEMA
]
EditLines = Annotated[
    tuple[RequestedLine, ...],
    PlainValidator(_lines("Items inválidos", "La venta debe tener al menos un producto")),
    LINES_SCHEMA,
]


class BulkSaleRequest(RequestBody):
    """`POST /api/sales/bulk`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [{"item_id": 12, "quantity": 2}, {"item_id": 7, "quantity": 1}],
                    "payment_method": "Tarjeta",
                }
            ]
        }
    )

    items: BulkLines
    payment_method: PaymentMethod = DEFAULT_PAYMENT_METHOD

    @model_validator(mode="before")
    @classmethod
    def _items_present(cls, data: object) -> object:
        _require(data, "items", message=ITEMS_REQUIRED)
        return data

    def order(self) -> SaleOrder:
        return SaleOrder(lines=self.items, payment_method=self.payment_method)


def _barcode(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid("Código de barras inválido")
    barcode = str(value).strip()
    if not barcode or len(barcode) > MAX_BARCODE:
        raise invalid("Código de barras inválido")
    return check_storable(barcode)


def _quantity(value: object) -> int:
    quantity = lenient_int(value)
    if quantity is None or not 1 <= quantity <= MAX_QUANTITY:
        raise invalid("Cantidad inválida")
    return quantity


Barcode = Annotated[
    str,
    PlainValidator(_barcode),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_BARCODE},
                {"type": "integer"},
            ],
            "description": "A string or a number, trimmed and matched exactly.",
            "examples": ["7791234567890"],
        }
    ),
]
Quantity = Annotated[
    int,
    PlainValidator(_quantity),
    WithJsonSchema({**INTEGER_JSON_SCHEMA, "minimum": 1, "maximum": MAX_QUANTITY}),
]


class BarcodeSaleRequest(RequestBody):
    """`POST /api/sales`: one product by barcode."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"barcode": "7791234567890", "quantity": 2, "payment_method": "Efectivo"}]
        }
    )

    barcode: Barcode
    quantity: Quantity
    payment_method: PaymentMethod = DEFAULT_PAYMENT_METHOD

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("barcode") is None:
            raise invalid(MISSING_FIELDS)
        _require(data, "quantity", message=MISSING_FIELDS)
        return data

    def order(self) -> BarcodeOrder:
        return BarcodeOrder(
            barcode=self.barcode, quantity=self.quantity, payment_method=self.payment_method
        )


def _vendor(value: object) -> int:
    if value is None or value is False or value == 0 or value == "":
        raise invalid(MISSING_FIELDS)
    vendor_id = lenient_int(value)
    if vendor_id is None or not 1 <= vendor_id <= MAX_ID:
        raise invalid("Vendedor inválido")
    return vendor_id


VendorChange = Annotated[
    int | None,
    PlainValidator(_vendor),
    WithJsonSchema(
        {
            **INTEGER_JSON_SCHEMA,
            "minimum": 1,
            "maximum": MAX_ID,
            "description": "Id of an active user to reassign the sale to; absent: unchanged.",
        }
    ),
]


class SaleEditRequest(RequestBody):
    """`PUT /api/sales/<id>`: the sale's new lines (and optionally seller and method)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [{"item_id": 12, "quantity": 1}], "payment_method": "Tarjeta"}]
        }
    )

    items: EditLines
    vendor_id: VendorChange = None
    payment_method: PaymentMethodChange = None

    @model_validator(mode="before")
    @classmethod
    def _items_present(cls, data: object) -> object:
        _require(data, "items", message="Items inválidos")
        return data

    def edit(self) -> SaleEdit:
        return SaleEdit(
            lines=self.items, vendor_id=self.vendor_id, payment_method=self.payment_method
        )


# ------------------------------------------------------------------------------------ queries


def parse_filters(
    raw_from: str | None,
    raw_to: str | None,
    product: str | None,
    vendedor: str | None,
    tz: ZoneInfo,
) -> SaleFilters:
    """`from`/`to` are business-time-zone dates (whole days) or ISO timestamps; empty = absent.

    Text filters are trimmed and cut to 100 characters; empty = absent.
    """
    start = end = None
    raw_from = (raw_from or "").strip()
    raw_to = (raw_to or "").strip()
    try:
        if raw_from:
            start = parse_date_or_timestamp(raw_from, tz, end=False)
        if raw_to:
            end = parse_date_or_timestamp(raw_to, tz, end=True)
            if not _DATE_ONLY.match(raw_to):
                # A timestamp bound is inclusive; the query's upper bound is exclusive.
                end = end + timedelta(microseconds=1)
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed(INVALID_DATE) from exc
    return SaleFilters(
        start=start,
        end=end,
        product=(product or "").strip()[:MAX_FILTER] or None,
        vendedor=(vendedor or "").strip()[:MAX_FILTER] or None,
    )
