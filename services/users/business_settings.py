"""The whitelisted business settings behind `/api/settings/actual[/<key>]`.

Upstream exposed its whole `config.json` for anyone to read and write (reference §6.1.4). Here
only the keys below exist; each has a type, limits and a default. Only keys someone changed are
stored (`users.settings`); reads merge them over the defaults. Keys are dotted paths and the
full dictionary is nested by the first segment, like upstream's config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository_settings
from services.users.events import emit
from stockmanager.contracts.fields import INTEGER_JSON_SCHEMA, lenient_int, storable_text
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


class Rule(Protocol):
    """How one key's value is given and stored: `parse` normalises or refuses it (with the
    key's own message), `shape` and `json_schema` document it."""

    @property
    def shape(self) -> str: ...

    @property
    def json_schema(self) -> dict[str, Any]: ...

    def parse(self, key: str, value: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Text:
    max_length: int
    min_length: int = 0

    @property
    def shape(self) -> str:
        return f"text, trimmed, {self.min_length}–{self.max_length} characters"

    @property
    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}

    def parse(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _invalid(key, "debe ser texto")
        if not storable_text(value):
            raise _invalid(key, "contiene caracteres no permitidos")
        cleaned = value.strip()
        if len(cleaned) < self.min_length:
            raise _invalid(key, "no puede estar vacío")
        if len(cleaned) > self.max_length:
            raise _invalid(key, f"máximo {self.max_length} caracteres (tiene {len(cleaned)})")
        return cleaned


@dataclass(frozen=True, slots=True)
class Integer:
    minimum: int
    maximum: int

    @property
    def shape(self) -> str:
        return f'integer {self.minimum}–{self.maximum} (a numeric string such as "7" is taken)'

    @property
    def json_schema(self) -> dict[str, Any]:
        return {**INTEGER_JSON_SCHEMA, "minimum": self.minimum, "maximum": self.maximum}

    def parse(self, key: str, value: Any) -> int:
        number = lenient_int(value)  # the kernel's one integer rule
        if number is None or not self.minimum <= number <= self.maximum:
            raise _invalid(key, f"debe ser un número entero entre {self.minimum} y {self.maximum}")
        return number


@dataclass(frozen=True, slots=True)
class Boolean:
    @property
    def shape(self) -> str:
        return 'true or false (also the strings "true"/"false")'

    @property
    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}]}

    def parse(self, key: str, value: Any) -> bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise _invalid(key, "debe ser true o false")
        return value


@dataclass(frozen=True, slots=True)
class Currency:
    @property
    def shape(self) -> str:
        return "ISO 4217 code, 3 letters, stored upper-case"

    @property
    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^\\s*[A-Za-z]{3}\\s*$"}

    def parse(self, key: str, value: Any) -> str:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{3}", value.strip()):
            return value.strip().upper()
        raise _invalid(key, "debe ser un código de moneda ISO 4217 de 3 letras (p. ej. ARS)")


@dataclass(frozen=True, slots=True)
class SettingSpec:
    key: str
    default: Any
    rule: Rule | None  # None: read-only (the value comes from the process configuration)
    description: str

    @property
    def shape(self) -> str:
        return "read-only" if self.rule is None else self.rule.shape


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "business.name",
        "StockManager",
        Text(min_length=1, max_length=100),
        "Name of the business (receipts, UI title).",
    ),
    SettingSpec("business.address", "", Text(max_length=200), "Postal address."),
    SettingSpec("business.phone", "", Text(max_length=30), "Contact phone."),
    SettingSpec("business.tax_id", "", Text(max_length=30), "Tax id (CUIT/RUT/...)."),
    SettingSpec("business.currency", "ARS", Currency(), "Currency prices are in."),
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
        Integer(minimum=0, maximum=1000),
        "Suggested min_quantity for new products (clients prefill it).",
    ),
    SettingSpec(
        "inventory.low_stock_alerts",
        True,
        Boolean(),
        "Whether clients should show low-stock alerts.",
    ),
    SettingSpec(
        "sales.default_payment_method",
        "Efectivo",
        Text(min_length=1, max_length=30),
        "Payment method clients preselect for a new sale.",
    ),
    SettingSpec("sales.receipt_footer", "", Text(max_length=200), "Text printed under receipts."),
)
SPECS_BY_KEY = {spec.key: spec for spec in SPECS}


def value_documentation() -> str:
    """What `PUT /api/settings/actual/<key>` accepts as `value`, key by key (for the docs)."""
    lines = [f"- `{spec.key}`: {spec.shape}. {spec.description}" for spec in SPECS]
    return "The value's type depends on the key:\n\n" + "\n".join(lines)


def value_json_schema() -> dict[str, Any]:
    """The JSON types some key accepts; which shape applies depends on the key in the path
    (each key's own schema is `SPECS_BY_KEY[key].rule.json_schema`)."""
    return {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}],
        "description": value_documentation(),
        "examples": ["Almacén Central", 10, False],
    }


def current_values(stored: dict[str, Any], timezone: str) -> dict[str, Any]:
    """Every whitelisted key with its effective value (flat, dotted keys)."""
    values: dict[str, Any] = {}
    for spec in SPECS:
        if spec.rule is None:
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
    conn: AsyncConnection, key: str, raw: Any, actor: Identity, timezone: str
) -> dict[str, Any]:
    """Store one whitelisted key; `raw` is the body's `value` as sent (None when absent)."""
    spec = SPECS_BY_KEY.get(key)
    if spec is None:
        # Unknown keys are 404, the same answer GET gives; nothing outside the whitelist is
        # ever stored.
        raise not_found(key)
    if raw is None:
        raise ValidationFailed("El valor es requerido", success=False)
    if spec.rule is None:
        raise SettingInvalid(
            f"Configuración '{key}' es de solo lectura (se define con STOCKMANAGER_TIMEZONE)",
            success=False,
        )
    value = spec.rule.parse(key, raw)
    found, previous = await repository_settings.replace_value(
        conn, key, value, updated_by=actor.user_id
    )
    before = previous if found else spec.default
    await emit(
        conn,
        events.settings_updated(actor, key, before, value),
    )
    return {key: value}
