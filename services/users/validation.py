"""Field rules for accounts (reference §4.8), applied on create, register and update alike.

Messages follow upstream's validator: `<Label>: <message>`, e.g.
`Usuario: Máximo 30 caracteres (tiene 31)`. Each rule is written once here; the request models
(`schemas_requests.py`) use the `Annotated` types at the bottom, which raise the same messages as
Pydantic failures the kernel's translator sends to the client verbatim.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from stockmanager.contracts.fields import check_storable, invalid, lenient_int
from stockmanager.identity import ROLES

USERNAME_MAX = 30
EMAIL_MAX = 100
PASSWORD_MIN = 6
PASSWORD_MAX = 128
CODE_MAX = 64
"""Reset codes are 6 digits; anything this long cannot be one (refused before any lookup)."""

MISSING_FIELDS = "Faltan campos requeridos"
PASSWORD_TOO_SHORT = "Contraseña debe tener mínimo 6 caracteres"
INVALID_ROLE = "Rol no válido"
INVALID_EMAIL_FORMAT = "Formato de email inválido"
INVALID_STATUS = "Estado: Debe ser 0 o 1"

# A local part, "@", and a domain of at least two non-empty dot-separated labels; no spaces.
_EMAIL_RE = re.compile(r"^[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]+$")


def too_long(limit: int, actual: int) -> str:
    return f"Máximo {limit} caracteres (tiene {actual})"


# --- problems: what is wrong with a value (None when nothing is) --------------------------------


def email_problem(value: str) -> str | None:
    """What is wrong with an (already trimmed) e-mail address, or None."""
    if not value:
        return "El campo es obligatorio"
    if len(value) > EMAIL_MAX:
        return too_long(EMAIL_MAX, len(value))
    if not _EMAIL_RE.match(value):
        return INVALID_EMAIL_FORMAT
    return None


def username_error(username: str) -> str | None:
    """The client message for an (already trimmed) username that breaks the rules, or None."""
    if not username:
        return "Usuario: El campo es obligatorio"
    if len(username) > USERNAME_MAX:
        return f"Usuario: {too_long(USERNAME_MAX, len(username))}"
    if "@" in username:
        # Login accepts a username or an e-mail; a username that looks like somebody's e-mail
        # would make that lookup ambiguous.
        return "Usuario: No puede contener '@'"
    return None


def email_error(email: str, prefix: str = "Email: ") -> str | None:
    problem = email_problem(email)
    return None if problem is None else f"{prefix}{problem}"


# --- checks: the value cleaned, or a validation failure with the client message ----------------


def text_of(value: object, message: str) -> str:
    """A storable string trimmed, or `message` as the failure for anything else."""
    if not isinstance(value, str):
        raise invalid(message)
    return check_storable(value).strip()


def check_username(value: object) -> str:
    username = text_of(value, "Usuario: Debe ser texto")
    error = username_error(username)
    if error is not None:
        raise invalid(error)
    return username


def check_email(value: object) -> str:
    email = text_of(value, "Email: Debe ser texto")
    error = email_error(email)
    if error is not None:
        raise invalid(error)
    return email


def check_password(value: object) -> str:
    """Passwords are taken as typed (never trimmed): 6–128 characters."""
    if not isinstance(value, str):
        raise invalid("Contraseña: Debe ser texto")
    if len(value) < PASSWORD_MIN:
        raise invalid(PASSWORD_TOO_SHORT)
    if len(value) > PASSWORD_MAX:
        raise invalid(f"Contraseña: {too_long(PASSWORD_MAX, len(value))}")
    return check_storable(value)


def check_role(value: object) -> str:
    """Matched case-insensitively, stored lower-case (upstream stored it as sent: bug 6.2.7)."""
    if not isinstance(value, str) or value.strip().lower() not in ROLES:
        raise invalid(INVALID_ROLE)
    return value.strip().lower()


def check_status(value: object) -> int:
    """0 or 1 under the kernel's integer rule; `true`/`false` too (documented, as upstream's
    `int()` took them)."""
    number = int(value) if isinstance(value, bool) else lenient_int(value)
    if number not in (0, 1):
        raise invalid(INVALID_STATUS)
    return number


# --- request field types ----------------------------------------------------------------------

ROLE_NAMES = sorted(ROLES)

USERNAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": USERNAME_MAX,
    "pattern": "^[^@]*$",
    "description": "Trimmed; 1–30 characters, no '@'. Unique case-insensitively.",
}
EMAIL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": EMAIL_MAX,
    "format": "email",
    "description": "Trimmed; at most 100 characters, local@domain.tld. Unique case-insensitively.",
}
PASSWORD_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": PASSWORD_MIN,
    "maxLength": PASSWORD_MAX,
    "description": "6–128 characters, taken as typed (never trimmed).",
}
ROLE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": ROLE_NAMES,
    "description": "Any case; stored lower-case. Only root may grant 'root'.",
}
STATUS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "enum": [0, 1]},
        {"type": "string", "enum": ["0", "1"]},
        {"type": "boolean"},
    ],
    "description": "1 active, 0 disabled.",
}

Username = Annotated[str, BeforeValidator(check_username), WithJsonSchema(USERNAME_SCHEMA)]
Email = Annotated[str, BeforeValidator(check_email), WithJsonSchema(EMAIL_SCHEMA)]
Password = Annotated[str, BeforeValidator(check_password), WithJsonSchema(PASSWORD_SCHEMA)]
Role = Annotated[str, BeforeValidator(check_role), WithJsonSchema(ROLE_SCHEMA)]
