"""One builder per event type: the upstream action name, old/new values and the description.

The mapping is documented in docs/api/audit.md ("Event → action").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.audit import describe
from services.audit.coerce import as_int, as_token
from services.audit.refused import action_for_request
from stockmanager.events import Event, EventType

LOGIN_FAILURE_REASONS = {
    "invalid_credentials": "Credenciales inválidas",
    "account_disabled": "Usuario desactivado",
    "invalid_role": "Rol de usuario no válido",
    "rate_limited": "Demasiados intentos",
}


@dataclass(frozen=True, slots=True)
class Change:
    """What a builder decides; identity, time and IP come from the envelope."""

    action: str
    description: str
    old: Any = None
    new: Any = None


Builder = Callable[[Event], Change]


def entity_of(event: Event) -> tuple[str, int | None]:
    entity = event.entity if isinstance(event.entity, Mapping) else {}
    return as_token(entity.get("type"), 32, "system"), as_int(entity.get("id"))


def _name(event: Event, key: str = "name") -> Any:
    for source in (event.data, event.before, event.after):
        if source and source.get(key) is not None:
            return source[key]
    return None


# --- products ---------------------------------------------------------------------------------


def _product_created(event: Event) -> Change:
    snapshot = event.after or event.data.get("product") or {}
    return Change("create", describe.created("product", snapshot), new=snapshot)


def _updated(event: Event) -> Change:
    extra = []
    if event.data.get("password_changed"):
        extra.append("Contraseña: cambiada")
    return Change(
        "update",
        describe.changes(event.before, event.after, extra),
        old=event.before,
        new=event.after,
    )


def _product_disabled(event: Event) -> Change:
    _, entity_id = entity_of(event)
    return Change(
        "delete",
        describe.named("product", "eliminado", "Nombre", _name(event), entity_id),
        old=event.before,
        new=event.after,
    )


def _product_activated(event: Event) -> Change:
    _, entity_id = entity_of(event)
    return Change(
        "activate",
        describe.named("product", "activado", "Nombre", _name(event), entity_id),
        old=event.before,
        new=event.after,
    )


def _bulk(title: str, action: str, old_key: str, new_key: str, field: str) -> Builder:
    def build(event: Event) -> Change:
        products = [p for p in event.data.get("products") or [] if isinstance(p, Mapping)]
        rows = [
            {"id": p.get("id"), "name": p.get("name"), "old": p.get(old_key), "new": p.get(new_key)}
            for p in products
        ]
        old = {"products": [{"id": r["id"], "name": r["name"], field: r["old"]} for r in rows]}
        new = {"products": [{"id": r["id"], "name": r["name"], field: r["new"]} for r in rows]}
        return Change(action, describe.bulk(title, rows, field), old=old, new=new)

    return build


def _imported(event: Event) -> Change:
    counts = {k: event.data.get(k, 0) for k in ("created", "updated", "skipped")}
    text = (
        f"Importación de productos — Creados: {counts['created']}, "
        f"Actualizados: {counts['updated']}, Omitidos: {counts['skipped']}"
    )
    return Change("import", text, new=counts)


# --- sales ------------------------------------------------------------------------------------


def _sale_created(event: Event) -> Change:
    snapshot = event.after or event.data
    return Change("create", describe.created("sale", snapshot), new=snapshot)


# --- users, applications, settings ------------------------------------------------------------


def _user_created(event: Event) -> Change:
    return Change("create", describe.created("user", event.after), new=event.after)


def _user_disabled(event: Event) -> Change:
    _, entity_id = entity_of(event)
    return Change(
        "delete",
        describe.named(
            "user", "eliminado", "Nombre de usuario", _name(event, "username"), entity_id
        ),
        old=event.before,
        new=event.after,
    )


def _registered(event: Event) -> Change:
    text = describe.created("user", event.after, verb="registrado")
    return Change("register", text + " (pendiente de aprobación)", new=event.after)


def _reset_requested(event: Event) -> Change:
    known = event.data.get("email_known")
    suffix = "" if known is None else f" (correo registrado: {describe.plain(bool(known))})"
    return Change("reset_password", "Solicitud de código de recuperación de contraseña" + suffix)


def _password_reset(event: Event) -> Change:
    _, entity_id = entity_of(event)
    return Change(
        "change_password", f"Contraseña restablecida con código de recuperación (ID: {entity_id})"
    )


def _password_changed(event: Event) -> Change:
    _, entity_id = entity_of(event)
    return Change("change_password", f"Contraseña cambiada por el propio usuario (ID: {entity_id})")


def _application(action: str, verb: str) -> Builder:
    def build(event: Event) -> Change:
        _, entity_id = entity_of(event)
        text = describe.named(
            "application", verb, "Nombre de usuario", _name(event, "username"), entity_id
        )
        return Change(action, text, old=event.before, new=event.after)

    return build


def _settings_updated(event: Event) -> Change:
    key = event.data.get("key")
    old = {"key": key, "value": (event.before or {}).get("value")}
    new = {"key": key, "value": (event.after or {}).get("value")}
    text = (
        f"Cambios: Configuración '{describe.clip(str(key), 60)}': "
        f"'{describe.plain(old['value'])}' → '{describe.plain(new['value'])}'"
    )
    return Change("update", text, old=old, new=new)


# --- notifications ----------------------------------------------------------------------------


def _notification_created(event: Event) -> Change:
    snapshot = event.after or event.data
    return Change("create", describe.created("notification", snapshot), new=snapshot)


def _notification_deleted(event: Event) -> Change:
    _, entity_id = entity_of(event)
    return Change(
        "delete",
        describe.named("notification", "eliminado", "Título", _name(event, "title"), entity_id),
        old=event.before or (event.data or None),
    )


# --- gateway ----------------------------------------------------------------------------------


def _actor_name(event: Event) -> str:
    return describe.clip(str(event.actor.get("username") or "?"), 100)


def _login(event: Event) -> Change:
    return Change(
        "login",
        f"Inicio de sesión — Nombre de usuario: '{_actor_name(event)}' "
        f"(ID: {event.actor.get('id')})",
    )


def _logout(event: Event) -> Change:
    return Change(
        "logout",
        f"Cierre de sesión — Nombre de usuario: '{_actor_name(event)}' "
        f"(ID: {event.actor.get('id')})",
    )


def _login_failed(event: Event) -> Change:
    # The attempted name is unverified input: clipped, flattened, and never with the password.
    attempted = describe.clip(str(event.data.get("username") or ""), 100)
    reason_code = event.data.get("reason")
    reason = LOGIN_FAILURE_REASONS.get(str(reason_code), "Error")
    return Change(
        "login",
        f"Inicio de sesión fallido — Nombre de usuario: '{attempted}' ({reason})",
        new={"username": attempted, "reason": reason_code},
    )


def _refused(event: Event) -> Change:
    entity_type, entity_id = entity_of(event)
    method = str(event.data.get("method") or "").upper()
    path = describe.clip(str(event.data.get("path") or ""), 200)
    action = action_for_request(method, path)
    target = describe.entity_label(entity_type)
    if entity_id is not None:
        target += f" #{entity_id}"
    text = (
        f"Error al ejecutar {action} de {target}: HTTP {event.data.get('http_status')} "
        f"({method} {path})"
    )
    return Change(action, text)


def _debug_command(event: Event) -> Change:
    command = describe.clip(str(event.data.get("command")), 100)
    if event.status == "error":
        return Change("debug_command", f"Comando de diagnóstico rechazado: '{command}'")
    return Change("debug_command", f"Comando de diagnóstico ejecutado: '{command}'")


BUILDERS: dict[str, Builder] = {
    EventType.LOGIN_SUCCEEDED: _login,
    EventType.LOGIN_FAILED: _login_failed,
    EventType.LOGOUT: _logout,
    EventType.REQUEST_REFUSED: _refused,
    EventType.PRODUCT_CREATED: _product_created,
    EventType.PRODUCT_UPDATED: _updated,
    EventType.PRODUCT_DISABLED: _product_disabled,
    EventType.PRODUCT_ACTIVATED: _product_activated,
    EventType.PRODUCT_PRICES_BULK_UPDATED: _bulk(
        "Actualización masiva de precios", "update_price_bulk", "old_price", "new_price", "price"
    ),
    EventType.PRODUCT_STOCK_BULK_UPDATED: _bulk(
        "Actualización masiva de stock", "stock_update_bulk", "old_stock", "new_stock", "quantity"
    ),
    EventType.PRODUCTS_IMPORTED: _imported,
    EventType.SALE_CREATED: _sale_created,
    EventType.SALE_UPDATED: _updated,
    EventType.USER_CREATED: _user_created,
    EventType.USER_UPDATED: _updated,
    EventType.USER_DISABLED: _user_disabled,
    EventType.USER_REGISTERED: _registered,
    EventType.USER_PASSWORD_CHANGED: _password_changed,
    EventType.USER_PASSWORD_RESET_REQUESTED: _reset_requested,
    EventType.USER_PASSWORD_RESET: _password_reset,
    EventType.APPLICATION_APPROVED: _application("approve", "aprobado"),
    EventType.APPLICATION_REJECTED: _application("reject", "rechazado"),
    EventType.SETTINGS_UPDATED: _settings_updated,
    EventType.NOTIFICATION_CREATED: _notification_created,
    EventType.NOTIFICATION_DELETED: _notification_deleted,
    EventType.DEBUG_COMMAND_RUN: _debug_command,
}


# The action of each known type when its payload cannot be described (see record_for).
FALLBACK_ACTIONS: dict[str, str] = {
    EventType.LOGIN_SUCCEEDED: "login",
    EventType.LOGIN_FAILED: "login",
    EventType.LOGOUT: "logout",
    EventType.PRODUCT_CREATED: "create",
    EventType.PRODUCT_UPDATED: "update",
    EventType.PRODUCT_DISABLED: "delete",
    EventType.PRODUCT_ACTIVATED: "activate",
    EventType.PRODUCT_PRICES_BULK_UPDATED: "update_price_bulk",
    EventType.PRODUCT_STOCK_BULK_UPDATED: "stock_update_bulk",
    EventType.PRODUCTS_IMPORTED: "import",
    EventType.SALE_CREATED: "create",
    EventType.SALE_UPDATED: "update",
    EventType.USER_CREATED: "create",
    EventType.USER_UPDATED: "update",
    EventType.USER_DISABLED: "delete",
    EventType.USER_REGISTERED: "register",
    EventType.USER_PASSWORD_CHANGED: "change_password",
    EventType.USER_PASSWORD_RESET_REQUESTED: "reset_password",
    EventType.USER_PASSWORD_RESET: "change_password",
    EventType.APPLICATION_APPROVED: "approve",
    EventType.APPLICATION_REJECTED: "reject",
    EventType.SETTINGS_UPDATED: "update",
    EventType.NOTIFICATION_CREATED: "create",
    EventType.NOTIFICATION_DELETED: "delete",
    EventType.DEBUG_COMMAND_RUN: "debug_command",
}


def generic_change(event: Event) -> Change:
    """A type this version does not know (or a payload it cannot describe): still recorded,
    with upstream's generic description."""
    entity_type, entity_id = entity_of(event)
    action = FALLBACK_ACTIONS.get(event.type) or as_token(
        str(event.type).rsplit(".", 1)[-1], 64, "event"
    )
    return Change(
        action, describe.generic(action, entity_type, entity_id), old=event.before, new=event.after
    )
