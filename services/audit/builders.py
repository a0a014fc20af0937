"""One builder per event type: the upstream action name, old/new values and the description.

The mapping is documented in docs/api/audit.md ("Event → action"). The type-specific fields of
`data` are read through the payload models of `stockmanager.contracts.events`; snapshots
(`before`/`after`) are recorded and described as the JSON objects they are on the wire, whatever
keys they carry (an audit trail keeps what was said, not our reading of it). A payload that does
not match its contract raises `pydantic.ValidationError` here, and the event is still recorded,
with the generic description (records.record_for).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.audit import describe
from services.audit.coerce import as_int, as_token
from services.audit.refused import action_for_request
from stockmanager.contracts.events import (
    DebugCommand,
    LoginFailed,
    NotificationChanged,
    PasswordResetRequested,
    PricesBulkUpdated,
    ProductCreated,
    ProductsImported,
    ProductStatusChanged,
    RequestRefused,
    SettingsUpdated,
    SettingValue,
    StockBulkUpdated,
    UpstreamImported,
    UserUpdated,
    WebhookDisabled,
    WebhookSecretRotated,
)
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


def _snapshot_value(event: Event, key: str) -> Any:
    """`key` of the `before` or `after` snapshot (the first that has it), else None."""
    for snapshot in (event.before, event.after):
        if isinstance(snapshot, Mapping) and snapshot.get(key) is not None:
            return snapshot[key]
    return None


# --- products ---------------------------------------------------------------------------------


def _product_created(event: Event) -> Change:
    snapshot = event.after or event.data_as(ProductCreated).product.wire()
    return Change("create", describe.created("product", snapshot), new=snapshot)


def _updated(event: Event) -> Change:
    """`product.updated`, `sale.updated`: the snapshots say everything."""
    return Change(
        "update", describe.changes(event.before, event.after), old=event.before, new=event.after
    )


def _user_updated(event: Event) -> Change:
    extra = ["Contraseña: cambiada"] if event.data_as(UserUpdated).password_changed else []
    return Change(
        "update",
        describe.changes(event.before, event.after, extra),
        old=event.before,
        new=event.after,
    )


def _product_status(action: str, verb: str) -> Builder:
    def build(event: Event) -> Change:
        _, entity_id = entity_of(event)
        name = event.data_as(ProductStatusChanged).name
        return Change(
            action,
            describe.named("product", verb, "Nombre", name, entity_id),
            old=event.before,
            new=event.after,
        )

    return build


def _bulk(
    event: Event,
    title: str,
    action: str,
    field: str,
    rows: list[tuple[int, str, Any, Any]],
    wire_keys: tuple[str, str],
) -> Change:
    """`rows`: (id, name, old, new) per product, read through the contract (the description);
    old/new record the values as sent (`wire_keys` in each entry of `data.products`)."""
    sent = event.data["products"]  # validated: one object per row
    described = [{"id": i, "name": n, "old": old, "new": new} for i, n, old, new in rows]
    old = {
        "products": [
            {"id": i, "name": n, field: entry[wire_keys[0]]}
            for (i, n, _, _), entry in zip(rows, sent, strict=True)
        ]
    }
    new = {
        "products": [
            {"id": i, "name": n, field: entry[wire_keys[1]]}
            for (i, n, _, _), entry in zip(rows, sent, strict=True)
        ]
    }
    return Change(action, describe.bulk(title, described, field), old=old, new=new)


def _prices_bulk(event: Event) -> Change:
    rows = [
        (p.id, p.name, p.old_price, p.new_price) for p in event.data_as(PricesBulkUpdated).products
    ]
    return _bulk(
        event,
        "Actualización masiva de precios",
        "update_price_bulk",
        "price",
        rows,
        ("old_price", "new_price"),
    )


def _stock_bulk(event: Event) -> Change:
    rows = [
        (p.id, p.name, p.old_stock, p.new_stock) for p in event.data_as(StockBulkUpdated).products
    ]
    return _bulk(
        event,
        "Actualización masiva de stock",
        "stock_update_bulk",
        "quantity",
        rows,
        ("old_stock", "new_stock"),
    )


def _imported(event: Event) -> Change:
    imported = event.data_as(ProductsImported)
    counts = {"created": imported.created, "updated": imported.updated, "skipped": imported.skipped}
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
            "user", "eliminado", "Nombre de usuario", _snapshot_value(event, "username"), entity_id
        ),
        old=event.before,
        new=event.after,
    )


def _registered(event: Event) -> Change:
    text = describe.created("user", event.after, verb="registrado")
    return Change("register", text + " (pendiente de aprobación)", new=event.after)


def _reset_requested(event: Event) -> Change:
    known = event.data_as(PasswordResetRequested).email_known
    return Change(
        "reset_password",
        "Solicitud de código de recuperación de contraseña "
        f"(correo registrado: {describe.plain(known)})",
    )


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
            "application", verb, "Nombre de usuario", _snapshot_value(event, "username"), entity_id
        )
        return Change(action, text, old=event.before, new=event.after)

    return build


def _settings_updated(event: Event) -> Change:
    key = event.data_as(SettingsUpdated).key
    old = {"key": key, "value": event.before_as(SettingValue).value}
    new = {"key": key, "value": event.after_as(SettingValue).value}
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
        describe.named(
            "notification",
            "eliminado",
            "Título",
            event.data_as(NotificationChanged).title,
            entity_id,
        ),
        old=event.before or (event.data or None),
    )


# --- webhooks ---------------------------------------------------------------------------------


def _webhook_created(event: Event) -> Change:
    return Change("create", describe.created("webhook", event.after), new=event.after)


def _webhook_deleted(event: Event) -> Change:
    _, entity_id = entity_of(event)
    url = _snapshot_value(event, "url")
    return Change(
        "delete", describe.named("webhook", "eliminado", "URL", url, entity_id), old=event.before
    )


def _webhook_secret_rotated(event: Event) -> Change:
    _, entity_id = entity_of(event)
    until = event.data_as(WebhookSecretRotated).previous_valid_until
    grace = f"el anterior vale hasta {until}" if until else "el anterior deja de valer"
    return Change("rotate_secret", f"Webhook #{entity_id}: secreto rotado ({grace})")


def _webhook_disabled(event: Event) -> Change:
    disabled = event.data_as(WebhookDisabled)
    text = (
        f"Webhook #{disabled.subscription_id} desactivado automáticamente tras "
        f"{disabled.consecutive_failures} entregas fallidas seguidas "
        f"({describe.clip(str(disabled.last_error), 100)})"
    )
    return Change("disable", text, old=event.before, new=event.after)


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
    failed = event.data_as(LoginFailed)
    attempted = describe.clip(failed.username, 100)
    reason_code = failed.reason
    reason = LOGIN_FAILURE_REASONS.get(str(reason_code), "Error")
    return Change(
        "login",
        f"Inicio de sesión fallido — Nombre de usuario: '{attempted}' ({reason})",
        new={"username": attempted, "reason": reason_code},
    )


def _refused(event: Event) -> Change:
    entity_type, entity_id = entity_of(event)
    refused = event.data_as(RequestRefused)
    method = refused.method.upper()
    path = describe.clip(refused.path, 200)
    action = action_for_request(method, path)
    target = describe.entity_label(entity_type)
    if entity_id is not None:
        target += f" #{entity_id}"
    text = f"Error al ejecutar {action} de {target}: HTTP {refused.http_status} ({method} {path})"
    return Change(action, text)


def _debug_command(event: Event) -> Change:
    command = describe.clip(str(event.data_as(DebugCommand).command), 100)
    if event.status == "error":
        return Change("debug_command", f"Comando de diagnóstico rechazado: '{command}'")
    return Change("debug_command", f"Comando de diagnóstico ejecutado: '{command}'")


# --- import-upstream --------------------------------------------------------------------------

_IMPORT_LABELS = (
    ("users", "Usuarios"),
    ("products", "Productos"),
    ("sales", "Ventas"),
    ("sale_lines", "Líneas"),
    ("notifications", "Notificaciones"),
    ("audit_log", "Auditoría"),
)


def _upstream_imported(event: Event) -> Change:
    imported = event.data_as(UpstreamImported)
    parts = [
        f"{label}: {imported.counts[kind].imported}"
        for kind, label in _IMPORT_LABELS
        if kind in imported.counts
    ]
    problems = sum(imported.problems.values())
    text = (
        "Importación desde StockManager — " + ", ".join(parts) + f"; problemas de datos: {problems}"
    )
    return Change("import", text, new=event.data)


BUILDERS: dict[str, Builder] = {
    EventType.LOGIN_SUCCEEDED: _login,
    EventType.LOGIN_FAILED: _login_failed,
    EventType.LOGOUT: _logout,
    EventType.REQUEST_REFUSED: _refused,
    EventType.PRODUCT_CREATED: _product_created,
    EventType.PRODUCT_UPDATED: _updated,
    EventType.PRODUCT_DISABLED: _product_status("delete", "eliminado"),
    EventType.PRODUCT_ACTIVATED: _product_status("activate", "activado"),
    EventType.PRODUCT_PRICES_BULK_UPDATED: _prices_bulk,
    EventType.PRODUCT_STOCK_BULK_UPDATED: _stock_bulk,
    EventType.PRODUCTS_IMPORTED: _imported,
    EventType.SALE_CREATED: _sale_created,
    EventType.SALE_UPDATED: _updated,
    EventType.USER_CREATED: _user_created,
    EventType.USER_UPDATED: _user_updated,
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
    EventType.WEBHOOK_CREATED: _webhook_created,
    EventType.WEBHOOK_UPDATED: _updated,
    EventType.WEBHOOK_DELETED: _webhook_deleted,
    EventType.WEBHOOK_SECRET_ROTATED: _webhook_secret_rotated,
    EventType.WEBHOOK_DISABLED: _webhook_disabled,
    EventType.UPSTREAM_IMPORTED: _upstream_imported,
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
    EventType.WEBHOOK_CREATED: "create",
    EventType.WEBHOOK_UPDATED: "update",
    EventType.WEBHOOK_DELETED: "delete",
    EventType.WEBHOOK_SECRET_ROTATED: "rotate_secret",
    EventType.WEBHOOK_DISABLED: "disable",
    EventType.UPSTREAM_IMPORTED: "import",
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
