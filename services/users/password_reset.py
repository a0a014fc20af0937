"""Password reset in three steps (reference §2.3), hardened as decisions §5 requires.

- The request step answers the same whether or not the e-mail belongs to an account.
- Codes are 6 digits from `secrets`, stored only as an HMAC (keyed with the internal secret, so
  a database dump alone does not reveal them), expire after 15 minutes (database clock), and only
  the newest code of a user is valid (one row per user, replaced on each request).
- Every wrong code counts; after 5 the code is burned. Per account and day there are caps on
  codes issued and on wrong codes tried (over all its codes); past them the answers are the
  usual ones (the request step still says "sent", every code is "invalid"). A wrong try must be
  remembered even though the request fails, so these functions return an outcome and the
  endpoint raises only after the transaction committed.
- The change step requires the code to have been verified by the validate step, and ends every
  session of the user (event `user.password_reset`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository, repository_resets
from services.users.events import emit
from services.users.settings import UsersSettings
from stockmanager.contracts.users_directory import is_active
from stockmanager.errors import ApiError
from stockmanager.identity import Identity

CODE_SENT = "Codigo enviado al correo"
CODE_VERIFIED = "Código verificado, puedes restablecer tu contraseña"
PASSWORD_RESET_DONE = "Contraseña restablecida exitosamente"


class InvalidCode(ApiError):
    status = 401
    code = "invalid_code"
    default_message = "Código inválido o expirado"


class CodeNotVerified(ApiError):
    status = 401
    code = "code_not_verified"
    default_message = "Código no verificado o expirado"


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(secret: str, user_id: int, code: str) -> str:
    return hmac.new(secret.encode(), f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class CodeAttempt:
    email: str
    code: str


@dataclass(frozen=True, slots=True)
class ResetMail:
    """What to mail once the transaction that stored the code has committed."""

    to: str
    code: str


async def request_code(
    conn: AsyncConnection, caller: Identity, email: str, settings: UsersSettings
) -> ResetMail | None:
    """Issue a code for an active account; None (nothing to send) otherwise or when throttled."""
    user = await repository.find_by_email(conn, email)
    mail: ResetMail | None = None
    if user is not None and is_active(user.status, user.application):
        code = new_code()
        issued = await repository_resets.issue_code(
            conn,
            user.id,
            code_hash(settings.internal_secret, user.id, code),
            ttl=timedelta(seconds=settings.reset_code_ttl_seconds),
            max_requests=settings.reset_max_requests,
            window=timedelta(seconds=settings.reset_request_window_seconds),
            daily_max_requests=settings.reset_daily_max_requests,
        )
        if issued:
            mail = ResetMail(to=user.email, code=code)
    await emit(
        conn,
        events.password_reset_requested(caller, user.id if user is not None else None),
    )
    return mail


async def _check(
    conn: AsyncConnection,
    attempt: CodeAttempt,
    settings: UsersSettings,
    *,
    require_verified: bool,
) -> int | None:
    """The user id when the code is right (and live, unburned, verified if required).

    A wrong code is counted against the user's current code.
    """
    user = await repository.find_by_email(conn, attempt.email)
    if user is None:
        return None
    row = await repository_resets.lock_code(conn, user.id)
    if row is None or not row.live or row.attempts >= settings.reset_max_attempts:
        return None
    # Past the day's cap every code is refused, the right one too: a guess must teach nothing.
    if row.wrong_today >= settings.reset_daily_max_wrong_codes:
        return None
    expected = code_hash(settings.internal_secret, user.id, attempt.code)
    if not hmac.compare_digest(row.code_hash, expected):
        await repository_resets.record_wrong_attempt(conn, user.id)
        return None
    if require_verified and row.verified_at is None:
        return None
    return int(user.id)


async def validate_code(
    conn: AsyncConnection, attempt: CodeAttempt, settings: UsersSettings
) -> bool:
    user_id = await _check(conn, attempt, settings, require_verified=False)
    if user_id is None:
        return False
    await repository_resets.mark_verified(conn, user_id)
    return True


async def check_verified(
    conn: AsyncConnection, attempt: CodeAttempt, settings: UsersSettings
) -> bool:
    """First half of the change step: is this a verified, live code? (Counts a wrong one.)"""
    return await _check(conn, attempt, settings, require_verified=True) is not None


async def complete_reset(
    conn: AsyncConnection,
    caller: Identity,
    attempt: CodeAttempt,
    password_hash: str,
    settings: UsersSettings,
) -> bool:
    """Second half: re-check under lock (the code may have been replaced meanwhile), set the
    password, delete every code of the user, and end their sessions (through the event)."""
    user_id = await _check(conn, attempt, settings, require_verified=True)
    if user_id is None:
        return False
    await repository.set_password_hash(conn, user_id, password_hash)
    await repository_resets.delete_codes(conn, user_id)
    await emit(
        conn,
        events.password_reset(caller, user_id),
    )
    return True
