"""Self-registration (`POST /api/register`): a pending `vendedor` account an admin approves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository
from services.users.events import emit
from services.users.repository import DuplicateAccount
from services.users.service import NewUser
from stockmanager.errors import Conflict
from stockmanager.identity import Identity

ACCOUNT_TAKEN = "Usuario o correo ya existe"


async def refuse_taken(conn: AsyncConnection, new: NewUser) -> None:
    """409 when the name or e-mail is taken. Runs before the password is hashed (a duplicate
    costs no Argon2) and again in the registering transaction."""
    username_taken, email_taken = await repository.taken(
        conn, username=new.username, email=new.email, exclude_id=None
    )
    if username_taken or email_taken:
        raise Conflict(ACCOUNT_TAKEN)


async def register(
    conn: AsyncConnection, caller: Identity, new: NewUser, password_hash: str
) -> None:
    await refuse_taken(conn, new)
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
