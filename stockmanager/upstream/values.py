"""Parsing upstream cell values (SQLite is dynamically typed: any cell may hold anything).

Each parser returns None for a value it cannot read; the caller applies the rule and reports.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

CENT: Final = Decimal("0.01")
MONEY_MAX: Final = Decimal("9999999999.99")  # NUMERIC(12,2)
INT_MAX: Final = 2_147_483_647

Money = Decimal | float
"""A price as read: a float straight from upstream's REAL column (PostgreSQL rounds it to the
cent, half away from zero, exactly as `exact_money`), or a Decimal."""


def exact_money(value: Money) -> Decimal:
    if isinstance(value, Decimal):
        return value.quantize(CENT, ROUND_HALF_UP)
    return Decimal(repr(value)).quantize(CENT, ROUND_HALF_UP)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_money(value: Any) -> Decimal | None:
    """A price as NUMERIC(12,2): rounded to the cent half away from zero, as PostgreSQL rounds
    (upstream stores REAL)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = Decimal(repr(value))
    elif isinstance(value, (int, str)):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
    else:
        return None
    rounded = number.quantize(CENT, ROUND_HALF_UP)
    return rounded if abs(rounded) <= MONEY_MAX else None


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def local_time(value: Any, tz: ZoneInfo) -> datetime | None:
    """Upstream local time (`YYYY-MM-DD HH:MM:SS`, or ISO with `T` and microseconds) as UTC.
    A value carrying its own offset keeps it."""
    parsed = _datetime(value)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def utc_time(value: Any) -> datetime | None:
    """SQLite CURRENT_TIMESTAMP (UTC, `YYYY-MM-DD HH:MM:SS`)."""
    parsed = _datetime(value)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value.strip()) < 10:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if 1900 <= parsed.year <= 9998 else None


def calendar_date(value: Any) -> date | None:
    """An expiration date: `YYYY-MM-DD` (a time part is ignored) or `DD/MM/YYYY`."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) >= 10 and text[4] == "-":
            return date.fromisoformat(text[:10])
        if len(text) == 10 and text[2] == "/" and text[5] == "/":
            return date(int(text[6:]), int(text[3:5]), int(text[:2]))
    except ValueError:
        return None
    return None


def json_value(value: Any) -> tuple[Any, bool]:
    """(parsed JSON, ok); text that is not JSON comes back as itself (ok False)."""
    if value is None:
        return None, True
    text = as_text(value) or ""
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return text, False


def ip_address(value: Any) -> str | None:
    text = (as_text(value) or "").strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
