"""Readable descriptions in upstream's style (reference §4.9), in Spanish.

Upstream writes `Nuevo Producto creado — Nombre: 'x', Precio: '$1,234.50'`,
`Cambios: Precio: '10.0' → '12.0'; …` and `Producto eliminado — Nombre: 'x' (ID: n)`. We keep
those shapes and labels, with two corrections: feminine entities agree (`Nueva Venta creada`,
not `Nuevo Venta creado`), and money always renders the same way whatever JSON type the
producer used for it (`'10.0'` in change lists, `'$1,234.50'` in creations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

ENTITY_LABELS: dict[str, str] = {
    "product": "Producto",
    "sale": "Venta",
    "user": "Usuario",
    "application": "Aplicación",
    "notification": "Notificación",
    "settings": "Configuración",
    "debug": "Depuración",
    "system": "Sistema",
    "audit": "Auditoría",
    "metrics": "Métricas",
    "webhook": "Webhook",
}
FEMININE = frozenset({"sale", "application", "notification", "settings", "debug", "audit"})

FIELD_LABELS: dict[str, str] = {
    "username": "Nombre de usuario",
    "email": "Email",
    "role": "Rol",
    "status": "Estado",
    "application": "Solicitud",
    "name": "Nombre",
    "barcode": "Código de barras",
    "description": "Descripción",
    "price": "Precio",
    "quantity": "Cantidad",
    "min_quantity": "Stock mínimo",
    "expiration_date": "Fecha de expiración",
    "vendor_id": "Vendedor (ID)",
    "vendor_username": "Vendedor",
    "payment_method": "Método de pago",
    "total": "Total",
    "items": "Productos",
    "sale_id": "Venta (ID)",
    "user_id": "Usuario destino (ID)",
    "title": "Título",
    "type": "Tipo",
    "message": "Mensaje",
    "action_url": "Enlace",
    "is_read": "Leída",
    "key": "Clave",
    "value": "Valor",
    "url": "URL",
    "events": "Eventos",
    "active": "Activo",
}

# Display order of fields in descriptions. Payloads that went through a JSONB outbox arrive
# with their keys reordered (shortest first), so the order is fixed here, not taken from them.
DISPLAY_ORDER: dict[str, int] = {
    key: rank
    for rank, key in enumerate(
        (
            "barcode",
            "name",
            "description",
            "price",
            "quantity",
            "min_quantity",
            "expiration_date",
            "username",
            "email",
            "role",
            "status",
            "application",
            "vendor_username",
            "vendor_id",
            "payment_method",
            "total",
            "items",
            "sale_id",
            "user_id",
            "title",
            "message",
            "type",
            "key",
            "value",
        )
    )
}

MONEY_FIELDS = frozenset({"price", "old_price", "new_price", "total", "unit_price", "subtotal"})
# Never part of a description (identity is given separately; secrets are never stored).
HIDDEN_FIELDS = frozenset(
    {"id", "password", "password_hash", "new_password", "code", "created_at", "updated_at"}
)
# Set by the system on creation rather than chosen by the creator (upstream lists the request
# body, which never carries them).
SYSTEM_SET_ON_CREATE = frozenset({"status", "application", "sale_id", "vendor_id"})

MAX_TEXT = 200  # a quoted value longer than this is cut (descriptions stay readable)
MAX_LIST_ITEMS = 50  # bulk descriptions list this many products, then "… y N más"


def ordered(keys: Iterable[str]) -> list[str]:
    """Known fields in DISPLAY_ORDER, then any others alphabetically."""
    unique = list(dict.fromkeys(keys))
    return sorted(unique, key=lambda k: (DISPLAY_ORDER.get(k, len(DISPLAY_ORDER)), k))


def entity_label(entity_type: str) -> str:
    return ENTITY_LABELS.get(entity_type, entity_type.capitalize() or "Entidad")


def field_label(key: str) -> str:
    return FIELD_LABELS.get(key, key.replace("_", " ").capitalize())


def _agree(entity_type: str, masculine: str, feminine: str) -> str:
    return feminine if entity_type in FEMININE else masculine


def clip(value: str, limit: int = MAX_TEXT) -> str:
    flat = " ".join(value.split())  # no control characters or line breaks from user input
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def money(value: Any) -> str:
    """`$1,234.50` (creations, like upstream)."""
    amount = _decimal(value)
    return f"${amount:,.2f}" if amount is not None else plain(value)


def money_plain(value: Any) -> str:
    """`10.0` (change lists: upstream printed the float as Python does)."""
    amount = _decimal(value)
    return str(float(amount)) if amount is not None else plain(value)


def plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "sí" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return clip(str(value))


def items_summary(items: Any) -> str:
    """Sale lines as `'Coca' x2, 'Pan' x1`."""
    if not isinstance(items, list):
        return plain(items)
    parts = []
    for item in items[:MAX_LIST_ITEMS]:
        if isinstance(item, Mapping):
            name = item.get("name") or f"ID {item.get('item_id', '?')}"
            parts.append(f"'{clip(str(name), 60)}' x{item.get('quantity', '?')}")
    if len(items) > MAX_LIST_ITEMS:
        parts.append(f"… y {len(items) - MAX_LIST_ITEMS} más")
    return ", ".join(parts)


def render_value(key: str, value: Any, *, creation: bool = False) -> str:
    if key == "items":
        return items_summary(value)
    if key in MONEY_FIELDS:
        return money(value) if creation else money_plain(value)
    return plain(value)


def quoted(key: str, value: Any, *, creation: bool = False) -> str:
    """`'value'`; sale lines quote each product name instead (`'A' x2, 'B' x1`)."""
    rendered = render_value(key, value, creation=creation)
    return rendered if key == "items" else f"'{rendered}'"


def _same(key: str, old: Any, new: Any) -> bool:
    if key in MONEY_FIELDS:
        a, b = _decimal(old), _decimal(new)
        if a is not None and b is not None:
            return a == b
    return bool(old == new)


def created(entity_type: str, values: Mapping[str, Any] | None, *, verb: str = "creado") -> str:
    """`Nuevo Producto creado — Nombre: 'x', Precio: '$1,234.50', …`."""
    adjective = _agree(entity_type, "Nuevo", "Nueva")
    head = f"{adjective} {entity_label(entity_type)} {_agree(entity_type, verb, verb[:-1] + 'a')}"
    values = values or {}
    fields = [
        f"{field_label(key)}: {quoted(key, values[key], creation=True)}"
        for key in ordered(values)
        if key not in HIDDEN_FIELDS and key not in SYSTEM_SET_ON_CREATE and values[key] is not None
    ]
    return f"{head} — {', '.join(fields)}" if fields else head


def changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    extra: Iterable[str] = (),
) -> str:
    """`Cambios: Precio: '10.0' → '12.0'; …` over the keys whose value differs."""
    extra = list(extra)
    if before is None or after is None:
        return "; ".join(["Cambios registrados (snapshot parcial)", *extra])
    keys = ordered([*after.keys(), *before.keys()])
    parts = [
        f"{field_label(key)}: {quoted(key, before.get(key))} → {quoted(key, after.get(key))}"
        for key in keys
        if key not in HIDDEN_FIELDS and not _same(key, before.get(key), after.get(key))
    ]
    parts.extend(extra)
    return "Cambios: " + "; ".join(parts) if parts else "Sin cambios detectados"


def named(entity_type: str, what: str, name_label: str, name: Any, entity_id: Any) -> str:
    """`Producto eliminado — Nombre: 'x' (ID: n)`."""
    verb = _agree(entity_type, what, what[:-1] + "a")
    head = f"{entity_label(entity_type)} {verb}"
    reference = f" (ID: {entity_id})" if entity_id is not None else ""
    if name is None:
        return f"{head}{reference}" if reference else head
    return f"{head} — {name_label}: '{clip(str(name), 100)}'{reference}"


def bulk(title: str, rows: Sequence[Mapping[str, Any]], key: str) -> str:
    """`Actualización masiva de precios (2 productos) — 'A' (ID: 1): '10.0' → '12.0'; …`."""
    parts = [
        f"'{clip(str(row.get('name', '')), 60)}' (ID: {row.get('id')}): "
        f"'{render_value(key, row.get('old'))}' → '{render_value(key, row.get('new'))}'"
        for row in rows[:MAX_LIST_ITEMS]
    ]
    if len(rows) > MAX_LIST_ITEMS:
        parts.append(f"… y {len(rows) - MAX_LIST_ITEMS} más")
    noun = "producto" if len(rows) == 1 else "productos"
    head = f"{title} ({len(rows)} {noun})"
    return f"{head} — {'; '.join(parts)}" if parts else head


def generic(action: str, entity_type: str, entity_id: Any) -> str:
    """Upstream's fallback: `{Acción} de {Entidad} #id`."""
    words = {
        "create": "Creación",
        "update": "Actualización",
        "delete": "Eliminación",
        "get": "Consulta",
        "post": "Acción",
    }
    verb = words.get(action, action.replace("_", " ").capitalize())
    reference = f" #{entity_id}" if entity_id is not None else ""
    return f"{verb} de {entity_label(entity_type)}{reference}"
