"""The whitelisted business settings behind `/api/settings/actual[/<key>]`.

Upstream exposed its whole `config.json` for anyone to read and write (reference §6.1.4). Here
only the keys below exist; each has a type, limits and a default. Only keys someone changed are
stored (`users.settings`); reads merge them over the defaults. Keys are dotted paths and the
full dictionary is nested by the first segment, like upstream's config.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository_settings
from services.users.events import emit
from stockmanager.errors import ApiError, NotFound, ValidationFailed
from stockmanager.identity import Identity


class SettingNotFound(NotFound):
    code = "setting_not_found"


class SettingInvalid(ValidationFailed):
    code = "invalid_setting"


def not_found(key: str) -> ApiError:
    return SettingNotFound(f"Configuración '{key}' no encontrada", success=False)


def _invalid(key: str, message: str) -> ApiError:
    return SettingInvalid(f"Configuración '{key}': {message}", success=False)


Parser = Callable[[str, Any], Any]


def text(*, min_length: int = 0, max_length: int) -> Parser:
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _invalid(key, "debe ser texto")
        cleaned = value.strip()
        if len(cleaned) < min_length:
            raise _invalid(key, "no puede estar vacío")
        if len(cleaned) > max_length:
            raise _invalid(key, f"máximo {max_length} caracteres (tiene {len(cleaned)})")
        return cleaned

    return parse


def integer(*, minimum: int, maximum: int) -> Parser:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(key, f"debe ser un número entero entre {minimum} y {maximum}")
        if not minimum <= value <= maximum:
            raise _invalid(key, f"debe ser un número entero entre {minimum} y {maximum}")
        return value

    return parse


def boolean() -> Parser:
    def parse(key: str, value: Any) -> bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise _invalid(key, "debe ser true o false")
        return value

    return parse


def currency() -> Parser:
    def parse(key: str, value: Any) -> str:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{3}", value.strip()):
            return value.strip().upper()
        raise _invalid(key, "debe ser un código de moneda ISO 4217 de 3 letras (p. ej. ARS)")

    return parse


@dataclass(frozen=True, slots=True)
class SettingSpec:
    key: str
    default: Any
    parse: Parser | None  # None: read-only (the value comes from the process configuration)
    description: str


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "business.name",
        "StockManager",
        text(min_length=1, max_length=100),
        "Name of the business (receipts, UI title).",
    ),
    SettingSpec("business.address", "", text(max_length=200), "Postal address."),
    SettingSpec("business.phone", "", text(max_length=30), "Contact phone."),
    SettingSpec("business.tax_id", "", text(max_length=30), "Tax id (CUIT/RUT/...)."),
    SettingSpec("business.currency", "ARS", currency(), "ISO 4217 code, stored upper-case."),
    SettingSpec(
        "business.timezone",
        None,
        None,
        "Read-only: the business time zone this deployment renders times in "
        "(process setting STOCKMANAGER_TIMEZONE).",
    ),
    SettingSpec(
        "inventory.default_min_stock",
        5,
        integer(minimum=0, maximum=1000),
        "Suggested min_quantity for new products (clients prefill it).",
    ),
    SettingSpec(
        "inventory.low_stock_alerts",
        True,
        boolean(),
        "Whether clients should show low-stock alerts.",
    ),
    SettingSpec(
        "sales.default_payment_method",
        "Efectivo",
        text(min_length=1, max_length=30),
        "Payment method clients preselect for a new sale.",
    ),
    SettingSpec("sales.receipt_footer", "", text(max_length=200), "Text printed under receipts."),
)
SPECS_BY_KEY = {spec.key: spec for spec in SPECS}


def current_values(stored: dict[str, Any], timezone: str) -> dict[str, Any]:
    """Every whitelisted key with its effective value (flat, dotted keys)."""
    values: dict[str, Any] = {}
    for spec in SPECS:
        if spec.parse is None:
            values[spec.key] = timezone
        else:
            values[spec.key] = stored.get(spec.key, spec.default)
    return values


def nested(values: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in values.items():
        namespace, name = key.split(".", 1)
        tree.setdefault(namespace, {})[name] = value
    return tree


async def all_settings(conn: AsyncConnection, timezone: str) -> dict[str, Any]:
    return nested(current_values(await repository_settings.stored_values(conn), timezone))


async def get_setting(conn: AsyncConnection, key: str, timezone: str) -> dict[str, Any]:
    """`{key: value}` for a leaf key, or `{namespace: {...}}` for a first-level namespace."""
    values = current_values(await repository_settings.stored_values(conn), timezone)
    if key in values:
        return {key: values[key]}
    tree = nested(values)
    if key in tree:
        return {key: tree[key]}
    raise not_found(key)


async def put_setting(
    conn: AsyncConnection, key: str, body: dict[str, Any], actor: Identity, timezone: str
) -> dict[str, Any]:
    spec = SPECS_BY_KEY.get(key)
    if spec is None:
        # Unknown keys are 404, the same answer GET gives; nothing outside the whitelist is
        # ever stored.
        raise not_found(key)
    if body.get("value") is None:
        raise ValidationFailed("El valor es requerido", success=False)
    if spec.parse is None:
        raise SettingInvalid(
            f"Configuración '{key}' es de solo lectura (se define con STOCKMANAGER_TIMEZONE)",
            success=False,
        )
    value = spec.parse(key, body["value"])
    found, previous = await repository_settings.replace_value(
        conn, key, value, updated_by=actor.user_id
    )
    before = previous if found else spec.default
    await emit(
        conn,
        events.settings_updated(actor, key, before, value),
    )
    return {key: value}
