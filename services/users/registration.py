"""Self-registration (`POST /api/register`): a pending `vendedor` account an admin approves."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository, validation
from services.users.events import emit
from services.users.repository import DuplicateAccount
from services.users.service import MISSING_FIELDS, NewUser
from stockmanager.errors import Conflict, ValidationFailed
from stockmanager.identity import Identity

ACCOUNT_TAKEN = "Usuario o correo ya existe"


def parse_registration(body: dict[str, Any]) -> NewUser:
    """Checks in upstream's order (reference §2.3, POST /api/register)."""
    fields = [body.get(key) for key in ("username", "email", "password")]
    if any(not isinstance(value, str) or not value.strip() for value in fields):
        raise ValidationFailed(MISSING_FIELDS)
    username, email, password = (str(value) for value in fields)
    if len(password) < validation.PASSWORD_MIN:
        raise ValidationFailed(validation.PASSWORD_TOO_SHORT)
    if validation.email_problem(email.strip()) == validation.INVALID_EMAIL_FORMAT:
        raise ValidationFailed(f"Email inválido: {validation.INVALID_EMAIL_FORMAT}")
    return NewUser(
        username=validation.clean_username(username),
        email=validation.clean_email(email),
        password=validation.clean_password(password),
        role="vendedor",
    )


async def register(
    conn: AsyncConnection, caller: Identity, new: NewUser, password_hash: str
) -> None:
    username_taken, email_taken = await repository.taken(
        conn, username=new.username, email=new.email, exclude_id=None
    )
    if username_taken or email_taken:
        raise Conflict(ACCOUNT_TAKEN)
    try:
        user = await repository.insert_user(
            conn,
            username=new.username,
            email=new.email,
            password_hash=password_hash,
            role="vendedor",
            status=0,
            application="pending",
        )
    except DuplicateAccount as duplicate:
        raise Conflict(ACCOUNT_TAKEN) from duplicate
    await emit(
        conn,
        events.user_registered(caller, user),
    )
