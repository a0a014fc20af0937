"""Values from an event envelope made safe for the audit table's columns and constraints.

A record must never be lost to an odd payload: anything that does not fit becomes None (or a
safe token) instead of failing the insert, which would send the event to the dead-letter stream.
Text PostgreSQL cannot store (NUL, lone surrogates: a refused request's path or an attempted
login name is client input) is kept readable, each such character replaced by U+FFFD.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from stockmanager.contracts.fields import storable_text

SECRET_KEYS = frozenset({"password", "password_hash", "new_password", "code", "token"})


def without_secrets(value: Any) -> Any:
    """Defence in depth: no password, hash or reset code is ever stored, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_secrets(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


REPLACEMENT = "\ufffd"

# A secret key (or an equal text value) in a value's JSON: then the value is walked.
_SECRET_MARKERS = tuple(orjson.dumps(key) for key in sorted(SECRET_KEYS))


def clean(value: Any) -> Any:
    """`storable(without_secrets(value))`, without walking (or copying) a value that needs
    neither, which is almost every value: that walk was a tenth of the audit consumer's CPU.

    The value is a JSON value from an envelope; its orjson form shows what the walks would
    change: a secret key appears quoted, NUL as an escape, and orjson refuses a lone surrogate.
    A false alarm (a text value equal to a secret key) only costs the walk.
    """
    try:
        dumped = orjson.dumps(value)
    except TypeError:  # a lone surrogate (or a key that is not text): walk it
        return storable(without_secrets(value))
    if b"\\u0000" in dumped or any(marker in dumped for marker in _SECRET_MARKERS):
        return storable(without_secrets(value))
    return value


def storable(value: Any) -> Any:
    """`value` with every text in it (mapping keys included, at any depth) storable."""
    if isinstance(value, str):
        if storable_text(value):
            return value
        return "".join(char if storable_text(char) else REPLACEMENT for char in value)
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


_BIGINT = 2**63


def as_int(value: Any) -> int | None:
    """An id for a bigint column, or None (bools, non-numbers and out-of-range values)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -_BIGINT <= number < _BIGINT else None


def as_token(value: Any, limit: int, default: str) -> str:
    """A lower-case ASCII name (action, entity type): what the CHECK constraints accept."""
    token = re.sub(r"[^a-z0-9_]+", "_", str(value or "").lower()).strip("_")[:limit]
    return token or default


def as_text(value: Any, limit: int = 200) -> str | None:
    return None if value is None else storable(str(value)[:limit])


def as_ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value))) if value else None
    except ValueError:
        return None


def as_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
