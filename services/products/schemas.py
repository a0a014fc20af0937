"""Wire shapes of the products service (upstream field names: `stock`, `min_stock`, ...)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

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


def iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


PRODUCT_KEYS = (
    "id",
    "barcode",
    "name",
    "description",
    "stock",
    "min_stock",
    "price",
    "status",
    "expiration_date",
    "created_at",
    "updated_at",
)


def product(row: Any) -> dict[str, Any]:
    """The list object of `products_all` / `products` (and, with `status`, the detail).

    `row` comes from `repository.display_columns` (same order; dates and times already text;
    a trailing `total` column is ignored).
    """
    return dict(zip(PRODUCT_KEYS, row, strict=False))


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
