"""The value rules every request shares, each written once.

- `lenient_int`: what counts as an integer on the wire. Upstream coerced with `int()`; we accept
  what a client could reasonably mean (a JSON integer, an integral float such as `5.0`, digits in
  a string such as `"5"`) and refuse what would silently change the value (`5.7`, `true`, NaN).
- `parse_money` / `money`: amounts are NUMERIC(12,2), rounded half up to cents.
- `storable_text`: PostgreSQL cannot store NUL in text, and a lone UTF-16 surrogate cannot be
  encoded as UTF-8; either would fail deep in the driver as a 500. Every text that reaches the
  database is checked here first, so the client gets a 400 instead.
- `clip_text`: untrusted free text copied into an event or a log entry (a login name, a path, a
  client's log line) is clipped to a few hundred characters, so one entry has a bounded size.

Each rule has a plain function (for code that is not a Pydantic model) and, where useful, a
`Rule` for `Annotated` request fields whose failures carry the caller's exact message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

ERROR_TYPE = "stockmanager"
"""The Pydantic error type whose context carries a message meant for the client verbatim."""

BIGINT_MAX = 2**63 - 1
INT4_MAX = 2_147_483_647
CENT = Decimal("0.01")

_INTEGER_TEXT = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_DECIMAL_TEXT_PATTERN = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?\s*$"
_DECIMAL_TEXT = re.compile(_DECIMAL_TEXT_PATTERN)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

UNSTORABLE_TEXT_MESSAGE = "El texto contiene caracteres no permitidos"

INTEGER_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string", "pattern": r"^\s*[+-]?[0-9]+\s*$"},
    ]
}
MONEY_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": _DECIMAL_TEXT_PATTERN},
    ]
}


def invalid(message: str, **extra: Any) -> PydanticCustomError:
    """A validation failure whose message the translator sends to the client as it is.

    `extra` (e.g. `field="price"`) is added to the error body next to `error` and `code`.
    """
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, **extra})


# --------------------------------------------------------------------------------- integers


def lenient_int(value: object) -> int | None:
    """The integer a JSON value means, or None when it is not one (see the module docstring)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        try:
            return int(value)
        except ValueError:  # beyond Python's digit limit for int(): no caller's range
            return None
    return None


def query_int(value: str | None, default: int) -> int:
    """A query-string integer; anything unparsable falls back to `default` (upstream lists
    never fail on a bad `page` or `limit`)."""
    if value is None:
        return default
    number = lenient_int(value)
    return default if number is None else number


# ------------------------------------------------------------------------------------ money


def parse_money(value: object) -> Decimal | None:
    """A finite decimal amount from a JSON number or numeric string; None otherwise.

    The amount is not rounded yet: callers compare it with their bounds first, then `money()`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    if isinstance(value, str) and not _DECIMAL_TEXT.match(value):
        return None  # Decimal() would also take "NaN", "٣" or "1_0"
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def money(amount: Decimal) -> Decimal:
    """NUMERIC(12,2): round half up to cents. Only for amounts already within their bounds."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


# ------------------------------------------------------------------------------------- text


def storable_text(value: str) -> bool:
    """Whether PostgreSQL can store this text (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(value) is None


def check_storable(value: str, message: str = UNSTORABLE_TEXT_MESSAGE) -> str:
    """`value` unchanged, or a validation failure with `message`."""
    if not storable_text(value):
        raise invalid(message)
    return value


CLIP_MAX_CHARS = 200
"""Longest untrusted free text (a typed login name, a request path, a client's log line) copied
into one event or log entry: clipping it keeps every entry small whatever a client sends."""

CLIP_MARK = "…"


def clip_text(value: str, limit: int = CLIP_MAX_CHARS) -> str:
    """`value` when it has at most `limit` characters, else its first characters and "…" (the
    result is `limit` characters long). For text copied into events and logs, never for data."""
    if len(value) <= limit:
        return value
    return value[: max(0, limit - len(CLIP_MARK))] + CLIP_MARK


def contains_unstorable(value: object) -> bool:
    """Whether any text anywhere inside a decoded JSON value is unstorable (keys included)."""
    if isinstance(value, str):
        return not storable_text(value)
    if isinstance(value, dict):
        return any(contains_unstorable(k) or contains_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_unstorable(item) for item in value)
    return False


# ---------------------------------------------------------------------- request field rules


@dataclass(frozen=True, slots=True)
class Rule:
    """`Annotated` metadata that runs `check` on the raw JSON value and publishes `json_schema`.

    Use it as `Annotated[int, integer_rule(...)]`: the Python type stays visible to mypy, the
    check replaces Pydantic's own coercion, and the OpenAPI document shows what the wire accepts.
    `check` returns the clean value or raises `invalid(...)` with the client's message.
    """

    check: Callable[[Any], Any]
    json_schema: Mapping[str, Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.json_schema)


def integer_rule(
    message: str,
    *,
    minimum: int = -BIGINT_MAX,
    maximum: int = BIGINT_MAX,
    range_message: str | None = None,
) -> Rule:
    """The lenient integer rule within [minimum, maximum]: `message` for a value that is not an
    integer, `range_message` (default: `message`) for one outside the bounds."""

    def check(value: object) -> int:
        number = lenient_int(value)
        if number is None:
            raise invalid(message)
        if not minimum <= number <= maximum:
            raise invalid(range_message or message)
        return number

    return Rule(check, {**INTEGER_JSON_SCHEMA, "minimum": minimum, "maximum": maximum})


def text_rule(
    message: str,
    *,
    max_length: int,
    min_length: int = 0,
    strip: bool = True,
    unstorable_message: str = UNSTORABLE_TEXT_MESSAGE,
) -> Rule:
    """A string, stripped, length-bounded and storable: `message` for a non-string or a length
    outside the bounds."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise invalid(message)
        text = value.strip() if strip else value
        if not min_length <= len(text) <= max_length:
            raise invalid(message)
        return check_storable(text, unstorable_message)

    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    return Rule(check, schema)
