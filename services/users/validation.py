"""Field rules for accounts (reference §4.8), applied on create, register and update alike.

Messages follow upstream's validator: `<Label>: <message>`, e.g.
`Usuario: Máximo 30 caracteres (tiene 31)`.
"""

from __future__ import annotations

import re
from typing import Any

from stockmanager.errors import ValidationFailed
from stockmanager.identity import ROLES

USERNAME_MAX = 30
EMAIL_MAX = 100
PASSWORD_MIN = 6
PASSWORD_MAX = 128

PASSWORD_TOO_SHORT = "Contraseña debe tener mínimo 6 caracteres"
INVALID_ROLE = "Rol no válido"
INVALID_EMAIL_FORMAT = "Formato de email inválido"

# A local part, "@", and a domain of at least two non-empty dot-separated labels; no spaces.
_EMAIL_RE = re.compile(r"^[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]+$")


def _too_long(limit: int, actual: int) -> str:
    return f"Máximo {limit} caracteres (tiene {actual})"


def email_problem(value: str) -> str | None:
    """What is wrong with an (already trimmed) e-mail address, or None."""
    if not value:
        return "El campo es obligatorio"
    if len(value) > EMAIL_MAX:
        return _too_long(EMAIL_MAX, len(value))
    if not _EMAIL_RE.match(value):
        return INVALID_EMAIL_FORMAT
    return None


def clean_username(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("Usuario: Debe ser texto")
    username = value.strip()
    if not username:
        raise ValidationFailed("Usuario: El campo es obligatorio")
    if len(username) > USERNAME_MAX:
        raise ValidationFailed(f"Usuario: {_too_long(USERNAME_MAX, len(username))}")
    if "@" in username:
        # Login accepts a username or an e-mail; a username that looks like somebody's e-mail
        # would make that lookup ambiguous.
        raise ValidationFailed("Usuario: No puede contener '@'")
    return username


def clean_email(value: Any, *, prefix: str = "Email: ") -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{prefix}Debe ser texto")
    email = value.strip()
    problem = email_problem(email)
    if problem is not None:
        raise ValidationFailed(f"{prefix}{problem}")
    return email


def clean_password(value: Any) -> str:
    """Passwords are taken as typed (never trimmed): 6–128 characters."""
    if not isinstance(value, str):
        raise ValidationFailed("Contraseña: Debe ser texto")
    if len(value) < PASSWORD_MIN:
        raise ValidationFailed(PASSWORD_TOO_SHORT)
    if len(value) > PASSWORD_MAX:
        raise ValidationFailed(f"Contraseña: {_too_long(PASSWORD_MAX, len(value))}")
    return value


def clean_role(value: Any) -> str:
    """Matched case-insensitively, stored lower-case (upstream stored it as sent: bug 6.2.7)."""
    if not isinstance(value, str) or value.strip().lower() not in ROLES:
        raise ValidationFailed(INVALID_ROLE)
    return value.strip().lower()


def clean_status(value: Any) -> int:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        value = int(value.strip())
    if isinstance(value, int) and value in (0, 1):
        return value
    raise ValidationFailed("Estado: Debe ser 0 o 1")
