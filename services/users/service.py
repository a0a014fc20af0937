"""Rules of the users service. Never commits: the request boundary does."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import passwords, repository
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


async def check_credentials(
    conn: AsyncConnection, identifier: str, password: str
) -> VerifiedUser:
    """The login check, in the order decisions §2 fixes.

    A wrong password is always 401; only a correct password on a disabled or pending account
    reveals 403. Upstream hashes are upgraded to Argon2id on success.
    """
    user = await repository.find_by_login(conn, identifier)
    if user is None:
        await asyncio.to_thread(passwords.burn_time, password)
        raise InvalidCredentials()
    valid = await asyncio.to_thread(passwords.verify_password, user.password_hash, password)
    if not valid:
        raise InvalidCredentials()
    if user.status != 1 or user.application != "accepted":
        raise AccountDisabled()
    if user.role not in ROLES:
        raise InvalidRole()
    if passwords.needs_rehash(user.password_hash):
        new_hash = await asyncio.to_thread(passwords.hash_password, password)
        await repository.set_password_hash(conn, user.id, new_hash)
    return VerifiedUser(user_id=user.id, username=user.username, role=user.role)
