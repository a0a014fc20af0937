"""Which domain events notify whom, with upstream's titles, messages and types (reference §1.7,
§2.1-§2.3). Pure functions: no I/O, so every text is easy to test and to read in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stockmanager.contracts.events import (
    ProductCreated,
    ProductSnapshot,
    ProductStatusChanged,
    SaleSummary,
    SaleUpdated,
    StockLow,
    UserSnapshot,
    UserUpdated,
    WebhookDisabled,
)
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


def _actor(event: Event) -> tuple[int, ...]:
    actor_id = event.actor.get("id")
    return (actor_id,) if isinstance(actor_id, int) and not isinstance(actor_id, bool) else ()


def _sale_created(event: Event) -> Draft | None:
    sale = event.data_as(SaleSummary)
    names = ", ".join(item.name for item in sale.items)
    quantities = ", ".join(str(item.quantity) for item in sale.items)
    return Draft(
        (sale.vendor_id,),
        "Venta registrada",
        f"Venta registrada de los productos {names} con cantidades {quantities}.",
        "success",
    )


def _sale_updated(event: Event) -> Draft | None:
    sale = event.data_as(SaleUpdated)
    return Draft(
        _actor(event),
        "Venta actualizada",
        f"Venta #{sale.sale_id} ha sido actualizada exitosamente",
        "success",
    )


def _product_created(event: Event) -> Draft | None:
    product = event.data_as(ProductCreated).product
    return Draft(
        _actor(event),
        "Producto agregado",
        f"El producto '{product.name}' ha sido agregado al inventario.",
        "success",
    )


def _product_updated(event: Event) -> Draft | None:
    product = event.after_as(ProductSnapshot)
    return Draft(
        _actor(event),
        "Producto actualizado",
        f"El producto '{product.name}' ha sido actualizado.",
        "success",
    )


def _product_disabled(event: Event) -> Draft | None:
    return Draft(
        _actor(event), "Producto deshabilitado", "El producto ha sido deshabilitado.", "warning"
    )


def _product_activated(event: Event) -> Draft | None:
    product = event.data_as(ProductStatusChanged)
    return Draft(
        _actor(event),
        "Producto activado",
        f"El producto {product.name} ha sido activado.",
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
    low = event.data_as(StockLow)
    recipients = (low.notify_user_id,) if low.notify_user_id is not None else _actor(event)
    return Draft(
        recipients,
        "Stock bajo",
        f"El producto {low.name} (ID: {low.item_id}) tiene stock bajo ({low.quantity} unidades).",
        "warning",
        to_admins=True,
    )


def _user_updated(event: Event) -> Draft | None:
    if not event.data_as(UserUpdated).by_admin:
        return None
    target = event.after_as(UserSnapshot).id
    return Draft((target,), "Tu cuenta ha sido actualizada", ACCOUNT_UPDATED_MESSAGE, "info")


def _webhook_disabled(event: Event) -> Draft | None:
    disabled = event.data_as(WebhookDisabled)
    return Draft(
        (),
        "Webhook desactivado",
        f"El webhook #{disabled.subscription_id} ({disabled.url}) fue desactivado tras "
        f"{disabled.consecutive_failures} entregas fallidas seguidas. Revisa el receptor y "
        "vuelve a activarlo.",
        "error",
        to_admins=True,
    )


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
    EventType.WEBHOOK_DISABLED: _webhook_disabled,
}


def draft_for(event: Event) -> Draft | None:
    """The notification an event asks for, or None (not a notifying event, or nobody to tell).

    Raises pydantic.ValidationError when the payload does not match its contract: the consumer
    dead-letters such an event instead of notifying with half a message.
    """
    trigger = TRIGGERS.get(event.type)
    if trigger is None or event.status != "success":
        return None
    return trigger(event)
