"""Wire shapes of the products service (upstream field names: `stock`, `min_stock`, ...).

Request bodies are Pydantic models validated by the kernel's contract layer
(`stockmanager.contracts.validation`): each field runs the product rule of `validation.py`,
fields are declared in upstream's validation order (the first failure is the one reported),
and every failure carries upstream's exact message. Response models document the 2xx bodies in
the OpenAPI document; the endpoints still answer with the fast dicts built by the functions
below, which those models describe field for field.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, model_validator
from starlette.responses import Response

from services.products.repository import PRODUCT_KEYS
from services.products.validation import (
    MIN_QUANTITY_MAX,
    PRICE_MAX,
    PRICE_SCHEMA,
    QUANTITY_MAX,
    REQUIRED_ON_CREATE,
    TEXT_SCHEMAS,
    check_barcode,
    check_description,
    check_expiration_date,
    check_min_quantity,
    check_name,
    check_price,
    check_quantity,
    check_status,
    integer_schema,
)
from stockmanager.contracts.fields import (
    BIGINT_MAX,
    INTEGER_JSON_SCHEMA,
    invalid,
    lenient_int,
    money,
    parse_money,
)
from stockmanager.contracts.validation import ErrorBody, RequestBody
from stockmanager.pagination import Page, pages_for
from stockmanager.timefmt import local_str

# Messages (upstream wording).
CREATED = "Producto creado exitosamente"
UPDATED = "Producto actualizado"
DISABLED = "Producto deshabilitado"
ACTIVATED = "Producto activado"
PRICES_UPDATED = "Precios actualizados exitosamente"
STOCK_UPDATED = "Stock actualizado exitosamente"
NOT_FOUND = "Producto no encontrado"
NOTHING_TO_UPDATE = "No hay datos para actualizar"
MISSING_FIELDS = "Faltan campos requeridos"
BULK_INVALID = "Datos inválidos"
BULK_ID = "Cada producto requiere id"
BULK_PRICE = "Cada producto requiere un precio numérico"
BULK_PRICE_RANGE = "El precio debe estar entre 0 y 1000000.0"
BULK_STOCK = "Cada producto requiere un stock entero no negativo"
BULK_STOCK_RANGE = f"El stock debe estar entre 0 y {QUANTITY_MAX}"


# ----------------------------------------------------------------------------- request bodies

Barcode = Annotated[str, BeforeValidator(check_barcode), WithJsonSchema(TEXT_SCHEMAS["barcode"])]
Name = Annotated[str, BeforeValidator(check_name), WithJsonSchema(TEXT_SCHEMAS["name"])]
Description = Annotated[
    str, BeforeValidator(check_description), WithJsonSchema(TEXT_SCHEMAS["description"])
]
Quantity = Annotated[
    int, BeforeValidator(check_quantity), WithJsonSchema(integer_schema(QUANTITY_MAX))
]
MinQuantity = Annotated[
    int, BeforeValidator(check_min_quantity), WithJsonSchema(integer_schema(MIN_QUANTITY_MAX))
]
Price = Annotated[Decimal, BeforeValidator(check_price), WithJsonSchema(PRICE_SCHEMA)]
ExpirationDate = Annotated[
    date | None,
    BeforeValidator(check_expiration_date),
    WithJsonSchema(TEXT_SCHEMAS["expiration_date"]),
]

# The same rules where a field may be absent (PUT; presence is `model_fields_set`). The check
# runs on every value the client sends, null included (`"name": null` is "obligatorio").
OptionalBarcode = Annotated[
    str | None, BeforeValidator(check_barcode), WithJsonSchema(TEXT_SCHEMAS["barcode"])
]
OptionalName = Annotated[
    str | None, BeforeValidator(check_name), WithJsonSchema(TEXT_SCHEMAS["name"])
]
OptionalDescription = Annotated[
    str | None, BeforeValidator(check_description), WithJsonSchema(TEXT_SCHEMAS["description"])
]
OptionalQuantity = Annotated[
    int | None, BeforeValidator(check_quantity), WithJsonSchema(integer_schema(QUANTITY_MAX))
]
OptionalMinQuantity = Annotated[
    int | None,
    BeforeValidator(check_min_quantity),
    WithJsonSchema(integer_schema(MIN_QUANTITY_MAX)),
]
OptionalPrice = Annotated[
    Decimal | None, BeforeValidator(check_price), WithJsonSchema(PRICE_SCHEMA)
]
OptionalStatus = Annotated[
    int | None, BeforeValidator(check_status), WithJsonSchema(integer_schema(1))
]


class ProductCreate(RequestBody):
    """`POST /api/products`. The five keys must be present (upstream checked presence first);
    then every field is validated in upstream's order. The status is always 1."""

    barcode: Barcode = Field(description="Unique; trimmed, 1-20 characters")
    description: Description = Field("", description="Trimmed, at most 200 characters")
    name: Name = Field(description="Trimmed, 1-25 characters")
    quantity: Quantity = Field(description="Initial stock, integer 0-10000")
    min_quantity: MinQuantity = Field(description="Low-stock threshold, integer 0-1000")
    price: Price = Field(description="0-1000000, rounded half up to cents")
    expiration_date: ExpirationDate = Field(None, description="YYYY-MM-DD; null or '' for none")

    @model_validator(mode="before")
    @classmethod
    def _required_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and not all(key in data for key in REQUIRED_ON_CREATE):
            raise invalid(MISSING_FIELDS)
        return data

    def values(self) -> dict[str, Any]:
        """The row to insert."""
        return {**self.model_dump(), "status": 1}


class ProductUpdate(RequestBody):
    """`PUT /api/products/<id>`: a true partial update. Every present field is validated with
    the create rules (null or "" clears `description`/`expiration_date`); unknown keys are
    ignored."""

    barcode: OptionalBarcode = None
    description: OptionalDescription = None
    name: OptionalName = None
    quantity: OptionalQuantity = Field(None, description="Absolute stock (recorded in the ledger)")
    min_quantity: OptionalMinQuantity = None
    price: OptionalPrice = None
    expiration_date: ExpirationDate = None
    status: OptionalStatus = Field(None, description="1 active, 0 disabled")

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent, with their clean values."""
        return {key: getattr(self, key) for key in self.model_fields_set}


def _check_new_price(value: Any) -> Decimal:
    amount = parse_money(value)
    if amount is None:
        raise invalid(BULK_PRICE)
    if not 0 <= amount <= PRICE_MAX:
        raise invalid(BULK_PRICE_RANGE)
    return money(amount)


def _check_new_stock(value: Any) -> int:
    number = lenient_int(value)
    if number is None or number < 0:
        raise invalid(BULK_STOCK)
    if number > QUANTITY_MAX:
        raise invalid(BULK_STOCK_RANGE)
    return number


def _check_entry_id(value: Any) -> int:
    number = lenient_int(value)
    if number is None or not 1 <= number <= BIGINT_MAX:
        raise invalid(BULK_ID)
    return number


EntryId = Annotated[
    int,
    BeforeValidator(_check_entry_id),
    WithJsonSchema({**INTEGER_JSON_SCHEMA, "minimum": 1, "maximum": BIGINT_MAX}),
]
NewPrice = Annotated[Decimal, BeforeValidator(_check_new_price), WithJsonSchema(PRICE_SCHEMA)]
NewStock = Annotated[
    int,
    BeforeValidator(_check_new_stock),
    WithJsonSchema({**INTEGER_JSON_SCHEMA, "minimum": 0, "maximum": QUANTITY_MAX}),
]


class _BulkEntry(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _entry(cls, data: Any) -> Any:
        """Upstream read entries with `.get()`: a missing key is null, a non-object has no id."""
        if not isinstance(data, dict):
            raise invalid(BULK_ID)
        return {**dict.fromkeys(cls.model_fields), **data}


class PriceEntry(_BulkEntry):
    id: EntryId = Field(description="Product id")
    new_price: NewPrice = Field(description="0-1000000, rounded half up to cents")


class StockEntry(_BulkEntry):
    id: EntryId = Field(description="Product id")
    new_stock: NewStock = Field(description="Absolute stock, integer 0-10000")


def _require_products_list(data: Any) -> Any:
    if isinstance(data, dict) and not isinstance(data.get("products"), list):
        raise invalid(BULK_INVALID)
    return data


class PriceBulk(RequestBody):
    """`POST /api/products/update_price_bulk`."""

    products: list[PriceEntry]

    @model_validator(mode="before")
    @classmethod
    def _products_list(cls, data: Any) -> Any:
        return _require_products_list(data)

    def prices(self) -> dict[int, Decimal]:
        """Price per product id (a repeated id: the last entry wins)."""
        return {entry.id: entry.new_price for entry in self.products}


class StockBulk(RequestBody):
    """`POST /api/products/stock_update_bulk`."""

    products: list[StockEntry]

    @model_validator(mode="before")
    @classmethod
    def _products_list(cls, data: Any) -> Any:
        return _require_products_list(data)

    def stock(self) -> dict[int, int]:
        """Absolute stock per product id (a repeated id: the last entry wins)."""
        return {entry.id: entry.new_stock for entry in self.products}


# ---------------------------------------------------------------------------- response models


class MessageOut(BaseModel):
    message: str


class ProductOut(BaseModel):
    """The product object of the lists, the detail and the export's columns."""

    id: int
    barcode: str | None
    name: str
    description: str
    stock: int
    min_stock: int
    price: float = Field(description="At most 2 decimals")
    status: int = Field(description="1 active, 0 disabled")
    expiration_date: str | None = Field(description="YYYY-MM-DD")
    created_at: str = Field(description="Local time, YYYY-MM-DD HH:MM:SS")
    updated_at: str = Field(description="Local time, YYYY-MM-DD HH:MM:SS")


class ProductPage(BaseModel):
    data: list[ProductOut]
    total: int
    page: int
    pages: int
    limit: int


class ItemOut(BaseModel):
    """`GET /api/items` autocomplete entry."""

    id: int
    barcode: str | None
    name: str
    description: str
    stock: int
    price: float


class MovementOut(BaseModel):
    id: int
    item_id: int
    delta: int
    quantity_after: int
    reason: str = Field(
        description="initial, product_update, bulk_stock, import, sale, sale_edit, ..."
    )
    reference: str | None
    actor_id: int | None
    actor_username: str | None
    created_at: str = Field(description="Local time, YYYY-MM-DD HH:MM:SS")


class MovementPage(BaseModel):
    data: list[MovementOut]
    total: int
    page: int
    pages: int
    limit: int


class ImportRowError(BaseModel):
    row: int = Field(description="Line number in the file (the header is line 1)")
    barcode: str | None
    error: str


class ImportResultOut(BaseModel):
    message: str
    created: int
    updated: int
    unchanged: int
    skipped: int = Field(description="Invalid rows left out (skip_invalid=1)")
    errors: list[ImportRowError] = Field(description="At most 1000")


class ImportRejected(ErrorBody):
    """400 of an import with invalid rows and no `skip_invalid`: nothing was written. Other
    400s of the import (empty file, missing columns, malformed CSV) have only error/code."""

    invalid_rows: int | None = None
    errors: list[ImportRowError] | None = None


class ProductFactsOut(BaseModel):
    """OpenFoodFacts facts for a barcode (missing values are "")."""

    barcode: str
    name: str
    description: str
    brands: str
    categories: str
    image_url: str


# ------------------------------------------------------------------------- response builders


def iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def product(row: Any) -> dict[str, Any]:
    """The list object of `products_all` / `products` (and, with `status`, the detail).

    `row` comes from `repository.display_columns` (same order; dates and times already text;
    a trailing `total` column is ignored).
    """
    return dict(zip(PRODUCT_KEYS, row, strict=False))


def page_response(data: str, total: int, page: Page) -> Response:
    """`page.envelope(...)` of a list whose `data` PostgreSQL already wrote as a JSON array
    (`repository.product_json`): the same bytes `json_response` would send, without decoding
    and encoding the page again."""
    body = (
        f'{{"data":{data},"total":{total},"page":{page.page},'
        f'"pages":{pages_for(total, page.limit)},"limit":{page.limit}}}'
    )
    return Response(body.encode(), media_type="application/json")


def item(row: Any) -> dict[str, Any]:
    """`GET /api/items` autocomplete entry."""
    return {
        "id": row.id,
        "barcode": row.barcode,
        "name": row.name,
        "description": row.description,
        "stock": row.quantity,
        "price": row.price,
    }


def movement(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": row.id,
        "item_id": row.item_id,
        "delta": row.delta,
        "quantity_after": row.quantity_after,
        "reason": row.reason,
        "reference": row.reference,
        "actor_id": row.actor_id,
        "actor_username": row.actor_username,
        "created_at": local_str(row.created_at, tz),
    }


def snapshot(row: Any) -> dict[str, Any]:
    """The product snapshot of event payloads (docs/events.md)."""
    price: Decimal = row.price
    return {
        "id": row.id,
        "barcode": row.barcode,
        "name": row.name,
        "description": row.description,
        "price": float(price),
        "quantity": row.quantity,
        "min_quantity": row.min_quantity,
        "status": row.status,
        "expiration_date": iso_date(row.expiration_date),
    }
