"""Which domain events notify whom, with upstream's titles, messages and types (reference §1.7,
§2.1-§2.3). Pure functions: no I/O, so every text is easy to test and to read in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stockmanager.events import Event, EventType


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification to create. `user_ids` are the explicit recipients; `to_admins` adds every
    active admin and root (resolved against `users.directory` by the service)."""

    user_ids: tuple[int, ...]
    title: str
    message: str
    type: str
    to_admins: bool = False


ACCOUNT_UPDATED_MESSAGE = (
    "Un administrador ha realizado cambios en tu cuenta. "
    "Si no reconoces esta actividad, contacta al soporte."
)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _actor(event: Event) -> tuple[int, ...]:
    actor_id = _int((event.actor or {}).get("id"))
    return (actor_id,) if actor_id is not None else ()


def _snapshot(event: Event, key: str) -> dict[str, Any]:
    value = getattr(event, key)
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _sale_created(event: Event) -> Draft | None:
    data = event.data
    seller = _int(data.get("vendor_id"))
    recipients = (seller,) if seller is not None else _actor(event)
    items = [item for item in data.get("items") or [] if isinstance(item, dict)]
    names = ", ".join(_text(item.get("name")) for item in items)
    quantities = ", ".join(_text(item.get("quantity")) for item in items)
    return Draft(
        recipients,
        "Venta registrada",
        f"Venta registrada de los productos {names} con cantidades {quantities}.",
        "success",
    )


def _sale_updated(event: Event) -> Draft | None:
    sale_id = event.data.get("sale_id", (event.entity or {}).get("id"))
    return Draft(
        _actor(event),
        "Venta actualizada",
        f"Venta #{_text(sale_id)} ha sido actualizada exitosamente",
        "success",
    )


def _product_created(event: Event) -> Draft | None:
    product = event.data.get("product")
    if not isinstance(product, dict):
        product = _snapshot(event, "after")
    return Draft(
        _actor(event),
        "Producto agregado",
        f"El producto '{_text(product.get('name'))}' ha sido agregado al inventario.",
        "success",
    )


def _product_updated(event: Event) -> Draft | None:
    name = _snapshot(event, "after").get("name") or _snapshot(event, "before").get("name")
    return Draft(
        _actor(event),
        "Producto actualizado",
        f"El producto '{_text(name)}' ha sido actualizado.",
        "success",
    )


def _product_disabled(event: Event) -> Draft | None:
    return Draft(
        _actor(event), "Producto deshabilitado", "El producto ha sido deshabilitado.", "warning"
    )


def _product_activated(event: Event) -> Draft | None:
    name = event.data.get("name") or _snapshot(event, "after").get("name")
    return Draft(
        _actor(event),
        "Producto activado",
        f"El producto {_text(name)} ha sido activado.",
        "success",
    )


def _prices_bulk_updated(event: Event) -> Draft | None:
    # Upstream gives no type for this one, so it is its default: info.
    return Draft(
        _actor(event),
        "Precios actualizados",
        "Los precios de los productos han sido actualizados.",
        "info",
    )


def _stock_bulk_updated(event: Event) -> Draft | None:
    return Draft(
        _actor(event), "Stock actualizado", "El stock de los productos ha sido actualizado.", "info"
    )


def _stock_low(event: Event) -> Draft | None:
    data = event.data
    acting = _int(data.get("notify_user_id"))
    recipients = (acting,) if acting is not None else _actor(event)
    item_id = data.get("item_id", (event.entity or {}).get("id"))
    return Draft(
        recipients,
        "Stock bajo",
        f"El producto {_text(data.get('name'))} (ID: {_text(item_id)}) "
        f"tiene stock bajo ({_text(data.get('quantity'))} unidades).",
        "warning",
        to_admins=True,
    )


def _user_updated(event: Event) -> Draft | None:
    if event.data.get("by_admin") is not True:
        return None
    target = _int((event.entity or {}).get("id"))
    if target is None:
        target = _int(_snapshot(event, "after").get("id"))
    if target is None:
        return None
    return Draft((target,), "Tu cuenta ha sido actualizada", ACCOUNT_UPDATED_MESSAGE, "info")


TRIGGERS: dict[str, Callable[[Event], Draft | None]] = {
    EventType.SALE_CREATED: _sale_created,
    EventType.SALE_UPDATED: _sale_updated,
    EventType.PRODUCT_CREATED: _product_created,
    EventType.PRODUCT_UPDATED: _product_updated,
    EventType.PRODUCT_DISABLED: _product_disabled,
    EventType.PRODUCT_ACTIVATED: _product_activated,
    EventType.PRODUCT_PRICES_BULK_UPDATED: _prices_bulk_updated,
    EventType.PRODUCT_STOCK_BULK_UPDATED: _stock_bulk_updated,
    EventType.STOCK_LOW: _stock_low,
    EventType.USER_UPDATED: _user_updated,
}


def draft_for(event: Event) -> Draft | None:
    """The notification an event asks for, or None (not a notifying event, or nobody to tell)."""
    trigger = TRIGGERS.get(event.type)
    if trigger is None or event.status != "success":
        return None
    return trigger(event)
