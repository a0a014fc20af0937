"""Self-service account settings: `PUT /api/settings/profile` and `PUT /api/settings/password`.

Changing the password verifies the current one off the event loop and without holding a
database connection, then stores the new hash with a compare-and-set (so two concurrent changes
cannot both succeed on the same old password). Wrong current passwords are counted per user in
Redis (shared by replicas) and refused with 429 past a limit, so a stolen session cannot be
used to guess the password. A successful change ends every session of the user, including
the one that made it (decisions §2), through the `user.password_changed` event.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository
from services.users.events import emit
from services.users.passwords import HashingSlots
from services.users.service import DuplicateEmail, UserNotFound
from services.users.settings import UsersSettings
from stockmanager.errors import ApiError, Conflict, RateLimited
from stockmanager.identity import Identity

log = logging.getLogger("users.profile")

PROFILE_UPDATED = "Perfil actualizado correctamente"
PASSWORD_UPDATED = "Contraseña actualizada correctamente"


class WrongCurrentPassword(ApiError):
    status = 401
    code = "wrong_current_password"
    default_message = "Contraseña actual incorrecta"


# --- profile ----------------------------------------------------------------------------------


async def update_profile(conn: AsyncConnection, actor: Identity, email: str) -> None:
    assert actor.user_id is not None
    current = await repository.get_user(conn, actor.user_id, for_update=True)
    if current is None:
        raise UserNotFound()
    if current.email == email:
        return
    _, email_taken = await repository.taken(
        conn, username=None, email=email, exclude_id=actor.user_id
    )
    if email_taken:
        raise DuplicateEmail()
    try:
        updated = await repository.update_user(conn, actor.user_id, {"email": email})
    except repository.DuplicateAccount as duplicate:
        raise DuplicateEmail() from duplicate
    await emit(
        conn,
        events.user_updated(
            actor,
            actor.user_id,
            current,
            updated,
            changed=["email"],
            password_changed=False,
            by_admin=False,
        ),
    )


# --- password ---------------------------------------------------------------------------------


def _failures_key(user_id: int) -> str:
    return f"sm:password-change-fail:{user_id}"


async def refuse_if_throttled(redis: Redis, user_id: int, settings: UsersSettings) -> None:
    key = _failures_key(user_id)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
    except Exception as exc:  # noqa: BLE001 - Redis down: do not lock users out
        log.warning("password-change throttle unavailable", extra={"error": repr(exc)})
        return
    if count is not None and int(count) >= settings.password_change_max_failures:
        retry = int(ttl) if ttl and ttl > 0 else settings.password_change_failure_window
        raise RateLimited(headers={"Retry-After": str(max(1, retry))})


async def record_failure(redis: Redis, user_id: int, settings: UsersSettings) -> None:
    key = _failures_key(user_id)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=settings.password_change_failure_window, nx=True)
            pipe.incr(key)
            await pipe.execute()
    except Exception as exc:  # noqa: BLE001
        log.warning("password-change throttle unavailable", extra={"error": repr(exc)})


async def clear_failures(redis: Redis, user_id: int) -> None:
    try:
        await redis.delete(_failures_key(user_id))
    except Exception as exc:  # noqa: BLE001
        log.warning("password-change throttle unavailable", extra={"error": repr(exc)})


async def verify_current(hashing: HashingSlots, stored_hash: str | None, password: str) -> bool:
    if stored_hash is None:
        await hashing.burn_time(password)
        return False
    return await hashing.verify(stored_hash, password)


async def store_new_password(
    conn: AsyncConnection, actor: Identity, *, old_hash: str, new_hash: str
) -> None:
    assert actor.user_id is not None
    if not await repository.replace_password_hash(
        conn, actor.user_id, old_hash=old_hash, new_hash=new_hash
    ):
        raise Conflict("La contraseña fue modificada por otra petición; inténtalo de nuevo")
    await emit(
        conn,
        events.password_changed(actor, actor.user_id),
    )
