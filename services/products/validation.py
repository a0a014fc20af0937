"""Field validation with upstream's labels and messages (reference §2.1, §4.8).

Messages are `<Label>: <message>` exactly as upstream's `ItemValidator` words them. Upstream
coerced with `int()`/`float()`; we accept what a client could reasonably mean (integral numbers,
numeric strings) and refuse what would silently change the value (5.7 units, `true`, NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from stockmanager.errors import ValidationFailed
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
# Upstream's validation order (ItemValidator): the first failing field is reported.
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
UPDATABLE = frozenset(FIELD_ORDER)


@dataclass(frozen=True, slots=True)
class FieldError(Exception):
    field: str
    message: str

    def __str__(self) -> str:
        return f"{LABELS[self.field]}: {self.message}"


def _text(field: str, value: Any, max_length: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise FieldError(field, "El campo es obligatorio")
        return None
    if not isinstance(value, str):
        raise FieldError(field, "Debe ser texto")
    clean: str = value.strip()
    if required and not clean:
        raise FieldError(field, "El campo es obligatorio")
    if len(clean) > max_length:
        raise FieldError(field, f"Máximo {max_length} caracteres (tiene {len(clean)})")
    return clean


def _integer(field: str, value: Any, maximum: int) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError(field, "El campo es obligatorio")
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise FieldError(field, "Debe ser un número entero")
    if number < 0:
        raise FieldError(field, "El valor mínimo es 0")
    if number > maximum:
        raise FieldError(field, f"El valor máximo es {maximum}")
    return number


def _price(value: Any) -> Decimal:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError("price", "El campo es obligatorio")
    amount: Decimal | None = None
    if isinstance(value, bool):
        amount = None
    elif isinstance(value, int | float | str):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            amount = None
        if amount is not None and not amount.is_finite():
            amount = None
    if amount is None:
        raise FieldError("price", "Debe ser un número")
    if amount < 0:
        raise FieldError("price", "El valor mínimo es 0")
    if amount > PRICE_MAX:
        # Upstream's limit is the float 1000000.0, and its message shows it that way.
        raise FieldError("price", "El valor máximo es 1000000.0")
    return money(amount)


def money(amount: Decimal) -> Decimal:
    """NUMERIC(12,2): round half up to cents."""
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _expiration(value: Any) -> date | None:
    text = _text("expiration_date", value, EXPIRATION_DATE_MAX, required=False)
    if not text:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise FieldError("expiration_date", "Formato inválido (use AAAA-MM-DD)") from exc


def _status(value: Any) -> int:
    number = _integer("status", value, 1)
    return number


def validate_field(field: str, value: Any) -> Any:
    """The clean value of one field; FieldError when it is invalid."""
    if field == "barcode":
        return _text("barcode", value, BARCODE_MAX, required=True)
    if field == "name":
        return _text("name", value, NAME_MAX, required=True)
    if field == "description":
        return _text("description", value, DESCRIPTION_MAX, required=False) or ""
    if field == "quantity":
        return _integer("quantity", value, QUANTITY_MAX)
    if field == "min_quantity":
        return _integer("min_quantity", value, MIN_QUANTITY_MAX)
    if field == "price":
        return _price(value)
    if field == "expiration_date":
        return _expiration(value)
    if field == "status":
        return _status(value)
    raise KeyError(field)


def validate_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Validate every present updatable field, in upstream's order; unknown keys are ignored."""
    clean: dict[str, Any] = {}
    for field in FIELD_ORDER:
        if field in values:
            clean[field] = validate_field(field, values[field])
    return clean


def validate_create(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/products: required keys present, then every field validated (API errors)."""
    if not all(field in body for field in REQUIRED_ON_CREATE):
        raise ValidationFailed("Faltan campos requeridos")
    fields = {field: body.get(field) for field in FIELD_ORDER if field != "status"}
    try:
        clean = validate_fields(fields)
    except FieldError as exc:
        raise ValidationFailed(str(exc), field=exc.field) from exc
    clean["status"] = 1
    return clean


def validate_update(body: dict[str, Any]) -> dict[str, Any]:
    """PUT /api/products/<id>: a true partial update; every present field is validated."""
    try:
        return validate_fields({key: value for key, value in body.items() if key in UPDATABLE})
    except FieldError as exc:
        raise ValidationFailed(str(exc), field=exc.field) from exc
