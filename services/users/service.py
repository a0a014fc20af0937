"""Rules for accounts managed by admins, the user lists and seller suggestions.

Never commits: the request boundary does. Validation that needs no database happens in the
request models (`schemas_requests.py`), before a transaction is opened and before any password
is hashed; the rules that depend on stored state (existence, root and self protection,
uniqueness) run inside the caller's transaction with the target row locked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository
from services.users.events import emit
from services.users.repository import (
    EMAIL_INDEX,
    SINGLE_ROOT_INDEX,
    USERNAME_INDEX,
    DuplicateAccount,
)
from stockmanager.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from stockmanager.identity import ROLE_ROOT, Identity
from stockmanager.pagination import Page
from stockmanager.timefmt import local_str

EMAIL_TAKEN = "El correo ya está registrado"
EMAIL_TAKEN_ON_UPDATE = "Este correo ya está registrado"
USERNAME_TAKEN = "Este usuario ya existe"


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "Usuario no encontrado"


class RootProtected(Forbidden):
    """Only root may create, modify, disable or delete root, or grant the root role."""

    code = "root_protected"


class SelfProtected(Forbidden):
    code = "self_protected"
    default_message = "No puedes darte de baja a ti mismo"


class SingleRoot(Conflict):
    """Exactly one root exists; granting root to a second user or demoting it is a conflict."""

    code = "single_root"
    default_message = "Debe existir exactamente un usuario root"


class DuplicateUsername(Conflict):
    code = "duplicate_username"
    default_message = USERNAME_TAKEN


class DuplicateEmail(Conflict):
    code = "duplicate_email"
    default_message = EMAIL_TAKEN


GRANT_ROOT_DENIED = "Solo root puede asignar el rol root"
TOUCH_ROOT_DENIED = "Solo root puede modificar o dar de baja la cuenta root"


def user_json(user: Any, tz: ZoneInfo) -> dict[str, Any]:
    """The upstream user object `{id, username, email, role, status, created_at}`."""
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "created_at": local_str(user.created_at, tz),
    }


def _conflict_from_index(duplicate: DuplicateAccount, *, email_message: str) -> ApiError:
    """A unique index that refused a write after our own check passed (a concurrent request)."""
    if duplicate.index == SINGLE_ROOT_INDEX:
        return SingleRoot()
    if duplicate.index == USERNAME_INDEX:
        return DuplicateUsername()
    if duplicate.index == EMAIL_INDEX:
        return DuplicateEmail(email_message)
    return Conflict()


# --- admin: create ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewUser:
    """A validated account to create (from `schemas_requests`)."""

    username: str
    email: str
    password: str
    role: str


async def refuse_new_user(conn: AsyncConnection, actor: Identity, new: NewUser) -> None:
    """Every refusal of an account creation that depends on stored state, in upstream's order.

    Runs before the password is hashed (a refusal costs no Argon2) and again in the creating
    transaction.
    """
    if new.role == ROLE_ROOT:
        if not actor.is_root:
            raise RootProtected(GRANT_ROOT_DENIED)
        if await repository.root_exists(conn):
            raise SingleRoot()
    username_taken, email_taken = await repository.taken(
        conn, username=new.username, email=new.email, exclude_id=None
    )
    if email_taken:
        raise DuplicateEmail(EMAIL_TAKEN)
    if username_taken:
        raise DuplicateUsername()


async def create_user(
    conn: AsyncConnection, actor: Identity, new: NewUser, password_hash: str
) -> Any:
    await refuse_new_user(conn, actor, new)
    try:
        user = await repository.insert_user(
            conn,
            username=new.username,
            email=new.email,
            password_hash=password_hash,
            role=new.role,
            status=1,
            application="accepted",
        )
    except DuplicateAccount as duplicate:
        raise _conflict_from_index(duplicate, email_message=EMAIL_TAKEN) from duplicate
    await emit(
        conn,
        events.user_created(actor, user),
    )
    return user


# --- admin: update ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserChanges:
    """Validated fields of a PUT body (None = not sent; from `schemas_requests`).

    A username or e-mail that fails validation is kept with its error and refused only if it
    differs from the stored value: edit forms send every field back, and an account imported
    or bootstrapped with a value today's rules reject (e.g. `root@localhost`) must stay
    editable.
    """

    username: str | None = None
    email: str | None = None
    role: str | None = None
    status: int | None = None
    password: str | None = None
    errors: tuple[tuple[str, ValidationFailed], ...] = ()


async def update_user(
    conn: AsyncConnection,
    actor: Identity,
    user_id: int,
    changes: UserChanges,
    password_hash: str | None,
) -> bool:
    """Apply an admin's PUT. Returns False when nothing changed (and then writes nothing)."""
    current = await repository.get_user(conn, user_id, for_update=True)
    if current is None:
        raise UserNotFound()
    if current.role == ROLE_ROOT and not actor.is_root:
        raise RootProtected(TOUCH_ROOT_DENIED)
    values: dict[str, Any] = {}
    for field in ("username", "email", "role", "status"):
        new_value = getattr(changes, field)
        if new_value is not None and new_value != getattr(current, field):
            values[field] = new_value
    for field, error in changes.errors:
        if field in values:
            raise error
    if "role" in values:
        if values["role"] == ROLE_ROOT:
            if not actor.is_root:
                raise RootProtected(GRANT_ROOT_DENIED)
            if await repository.root_exists(conn, exclude_id=user_id):
                raise SingleRoot()
        elif current.role == ROLE_ROOT:
            raise SingleRoot()  # demoting the only root would leave none
    if values.get("status") == 0 and user_id == actor.user_id:
        raise SelfProtected()
    if not values and password_hash is None:
        return False
    username_taken, email_taken = await repository.taken(
        conn, username=values.get("username"), email=values.get("email"), exclude_id=user_id
    )
    if username_taken:
        raise DuplicateUsername()
    if email_taken:
        raise DuplicateEmail(EMAIL_TAKEN_ON_UPDATE)
    stored = dict(values)
    if password_hash is not None:
        stored["password_hash"] = password_hash
    try:
        updated = await repository.update_user(conn, user_id, stored)
    except DuplicateAccount as duplicate:
        raise _conflict_from_index(duplicate, email_message=EMAIL_TAKEN_ON_UPDATE) from duplicate
    await emit(
        conn,
        events.user_updated(
            actor,
            user_id,
            current,
            updated,
            changed=list(values),
            password_changed=password_hash is not None,
            by_admin=True,
        ),
    )
    return True


async def disable_user(conn: AsyncConnection, actor: Identity, user_id: int) -> None:
    """DELETE /api/users/<id>: a soft delete (status 0). Idempotent; the event only on change."""
    if user_id == actor.user_id:
        raise SelfProtected()
    current = await repository.get_user(conn, user_id, for_update=True)
    if current is None:
        raise UserNotFound()
    if current.role == ROLE_ROOT and not actor.is_root:
        raise RootProtected(TOUCH_ROOT_DENIED)
    if current.status == 0:
        return
    updated = await repository.update_user(conn, user_id, {"status": 0})
    await emit(
        conn,
        events.user_disabled(actor, user_id, current, updated),
    )


# --- lists ------------------------------------------------------------------------------------

_STATUS_FILTERS = {"1": 1, "0": 0, "active": 1, "activo": 1, "inactive": 0, "inactivo": 0}


def parse_status_filter(value: str | None) -> int | None:
    """The `status` filter upstream's UI sends; anything unrecognised means "all"."""
    if value is None:
        return None
    return _STATUS_FILTERS.get(value.strip().lower())


async def list_users(
    conn: AsyncConnection, page: Page, *, search: str | None, status: int | None, tz: ZoneInfo
) -> dict[str, Any]:
    rows, total = await repository.list_users(
        conn, search=search, status=status, offset=page.offset, limit=page.limit
    )
    return page.envelope([user_json(row, tz) for row in rows], total)


async def get_user(conn: AsyncConnection, user_id: int, tz: ZoneInfo) -> dict[str, Any]:
    user = await repository.get_user(conn, user_id)
    if user is None:
        raise UserNotFound()
    return user_json(user, tz)


async def suggest_vendors(conn: AsyncConnection, term: str) -> list[dict[str, Any]]:
    rows = await repository.suggest_vendors(conn, term)
    return [{"id": row.id, "username": row.username, "email": row.email} for row in rows]
