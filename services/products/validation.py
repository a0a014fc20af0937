"""The product field rules with upstream's labels and messages (reference §2.1, §4.8).

Messages are `<Label>: <message>` exactly as upstream's `ItemValidator` words them. What counts
as an integer, an amount or storable text is the kernel's one rule (`lenient_int`,
`parse_money`/`money`, `check_storable` in `stockmanager.contracts.fields`); this module only
adds the product's bounds and wording. The same checks validate request bodies (the models of
`schemas.py`) and CSV import rows (`csvio.py`).

Each check takes the raw value and returns the clean one, or raises a kernel `invalid(...)`
error (a `PydanticCustomError`) whose message the client receives verbatim, with `field` set.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic_core import PydanticCustomError

from stockmanager.contracts.fields import (
    INTEGER_JSON_SCHEMA,
    MONEY_JSON_SCHEMA,
    invalid,
    lenient_int,
    money,
    parse_money,
    storable_text,
)
from stockmanager.timefmt import parse_date

NAME_MAX = 25
DESCRIPTION_MAX = 200
BARCODE_MAX = 20
QUANTITY_MAX = 10000
MIN_QUANTITY_MAX = 1000
PRICE_MAX = Decimal("1000000.00")
EXPIRATION_DATE_MAX = 10
DEFAULT_MIN_QUANTITY = 5

LABELS = {
    "barcode": "Código de barras",
    "description": "Descripción",
    "name": "Nombre",
    "quantity": "Cantidad",
    "min_quantity": "Cantidad mínima",
    "price": "Precio",
    "expiration_date": "Fecha de expiración",
    "status": "Estado",
}
REQUIRED_ON_CREATE = ("barcode", "name", "quantity", "min_quantity", "price")
# Upstream's validation order (ItemValidator): the first failing field is reported. The request
# models declare their fields in this order.
FIELD_ORDER = (
    "barcode",
    "description",
    "name",
    "quantity",
    "min_quantity",
    "price",
    "expiration_date",
    "status",
)

REQUIRED = "El campo es obligatorio"
UNSTORABLE = "El texto contiene caracteres no permitidos"


def field_error(field: str, message: str) -> PydanticCustomError:
    """`<Label>: <message>`, sent verbatim with `field` in the error body."""
    return invalid(f"{LABELS[field]}: {message}", field=field)


def error_message(error: PydanticCustomError) -> str:
    """The client-facing message of a check's failure (for the CSV row report)."""
    context = error.context or {}
    return str(context.get("message", error.message()))


def _text(field: str, value: Any, max_length: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise field_error(field, REQUIRED)
        return None
    if not isinstance(value, str):
        raise field_error(field, "Debe ser texto")
    clean = value.strip()
    if required and not clean:
        raise field_error(field, REQUIRED)
    if len(clean) > max_length:
        raise field_error(field, f"Máximo {max_length} caracteres (tiene {len(clean)})")
    if not storable_text(clean):
        raise field_error(field, UNSTORABLE)
    return clean


def _bounded_integer(field: str, value: Any, maximum: int) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise field_error(field, REQUIRED)
    number = lenient_int(value)
    if number is None:
        raise field_error(field, "Debe ser un número entero")
    if number < 0:
        raise field_error(field, "El valor mínimo es 0")
    if number > maximum:
        raise field_error(field, f"El valor máximo es {maximum}")
    return number


def check_barcode(value: Any) -> str:
    clean = _text("barcode", value, BARCODE_MAX, required=True)
    assert clean is not None  # required
    return clean


def check_name(value: Any) -> str:
    clean = _text("name", value, NAME_MAX, required=True)
    assert clean is not None  # required
    return clean


def check_description(value: Any) -> str:
    return _text("description", value, DESCRIPTION_MAX, required=False) or ""


def check_quantity(value: Any) -> int:
    return _bounded_integer("quantity", value, QUANTITY_MAX)


def check_min_quantity(value: Any) -> int:
    return _bounded_integer("min_quantity", value, MIN_QUANTITY_MAX)


def check_status(value: Any) -> int:
    return _bounded_integer("status", value, 1)


def check_price(value: Any) -> Decimal:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise field_error("price", REQUIRED)
    amount = parse_money(value)
    if amount is None:
        raise field_error("price", "Debe ser un número")
    if amount < 0:
        raise field_error("price", "El valor mínimo es 0")
    if amount > PRICE_MAX:
        # Upstream's limit is the float 1000000.0, and its message shows it that way.
        raise field_error("price", "El valor máximo es 1000000.0")
    return money(amount)


def check_expiration_date(value: Any) -> date | None:
    text = _text("expiration_date", value, EXPIRATION_DATE_MAX, required=False)
    if not text:
        return None
    try:
        return parse_date(text)
    except ValueError:
        raise field_error("expiration_date", "Formato inválido (use AAAA-MM-DD)") from None


FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "barcode": check_barcode,
    "description": check_description,
    "name": check_name,
    "quantity": check_quantity,
    "min_quantity": check_min_quantity,
    "price": check_price,
    "expiration_date": check_expiration_date,
    "status": check_status,
}


def validate_field(field: str, value: Any) -> Any:
    """The clean value of one field; `PydanticCustomError` (see `error_message`) when invalid."""
    return FIELD_CHECKS[field](value)


# JSON Schemas of the fields (what the OpenAPI document shows; the checks above are the truth).
TEXT_SCHEMAS: dict[str, dict[str, Any]] = {
    "barcode": {"type": "string", "minLength": 1, "maxLength": BARCODE_MAX},
    "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
    "description": {"anyOf": [{"type": "string", "maxLength": DESCRIPTION_MAX}, {"type": "null"}]},
    "expiration_date": {
        "anyOf": [
            {"type": "string", "format": "date", "description": "YYYY-MM-DD"},
            {"type": "string", "maxLength": 0},
            {"type": "null"},
        ]
    },
}


def integer_schema(maximum: int) -> dict[str, Any]:
    return {**INTEGER_JSON_SCHEMA, "minimum": 0, "maximum": maximum}


PRICE_SCHEMA: dict[str, Any] = {**MONEY_JSON_SCHEMA, "minimum": 0, "maximum": 1000000}
