"""The login check behind `POST /internal/auth/verify` (decisions §2).

Argon2 runs in a worker thread (under the process's hashing slots) on a row read beforehand, so
no database connection is held while it works; upstream (Werkzeug) hashes are replaced with
Argon2id after a successful login.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.users import passwords
from services.users.passwords import HashingSlots
from stockmanager.contracts.users_directory import is_active
from stockmanager.errors import ApiError, InvalidCredentials
from stockmanager.identity import ROLES


class AccountDisabled(ApiError):
    status = 403
    code = "account_disabled"
    default_message = "Usuario desactivado. Contacta al administrador"


class InvalidRole(ApiError):
    status = 403
    code = "invalid_role"
    default_message = "Rol de usuario no válido"


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    user_id: int
    username: str
    role: str


async def authenticate(hashing: HashingSlots, user: Any | None, password: str) -> VerifiedUser:
    """The login check on a user row read beforehand, in the order decisions §2 fixes.

    A wrong password is always 401; only a correct password on a disabled or pending account
    reveals 403. Runs Argon2 in a thread and needs no database connection meanwhile.
    """
    if user is None:
        await hashing.burn_time(password)
        raise InvalidCredentials()
    valid = await hashing.verify(user.password_hash, password)
    if not valid:
        raise InvalidCredentials()
    if not is_active(user.status, user.application):
        raise AccountDisabled()
    if user.role not in ROLES:
        raise InvalidRole()
    return VerifiedUser(user_id=user.id, username=user.username, role=user.role)


async def upgraded_hash(hashing: HashingSlots, user: Any, password: str) -> str | None:
    """A fresh Argon2id hash when the stored one is an upstream (Werkzeug) or outdated hash."""
    if not passwords.needs_rehash(user.password_hash):
        return None
    return await hashing.hash(password)
