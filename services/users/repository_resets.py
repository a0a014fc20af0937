"""All SQL on `users.password_resets` (one row per user: the newest code only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.users.tables import password_resets as resets

# The period of the daily caps: 24 hours from the first event of the "day" (database clock).
DAY = timedelta(days=1)


def _day_over() -> Any:
    return resets.c.day_started_at <= func.now() - literal(DAY)


async def issue_code(
    conn: AsyncConnection,
    user_id: int,
    code_hash: str,
    *,
    ttl: timedelta,
    max_requests: int,
    window: timedelta,
    daily_max_requests: int,
) -> bool:
    """Store a new code for the user, replacing any older one (attempts and verification reset).

    Returns False, changing nothing, when the user already had `max_requests` codes issued in the
    current window, or `daily_max_requests` in the current day. One statement, so concurrent
    requests for one user serialise on the row. All times are the database's clock.
    """
    now = func.now()
    window_over = resets.c.window_started_at <= now - literal(window)
    day_over = _day_over()
    statement = (
        insert(resets)
        .values(user_id=user_id, code_hash=code_hash, expires_at=now + literal(ttl))
        .on_conflict_do_update(
            index_elements=[resets.c.user_id],
            set_={
                "code_hash": code_hash,
                "created_at": now,
                "expires_at": now + literal(ttl),
                "attempts": 0,
                "verified_at": None,
                "window_started_at": case((window_over, now), else_=resets.c.window_started_at),
                "requests_in_window": case((window_over, 1), else_=resets.c.requests_in_window + 1),
                "day_started_at": case((day_over, now), else_=resets.c.day_started_at),
                "requests_today": case((day_over, 1), else_=resets.c.requests_today + 1),
                "wrong_codes_today": case((day_over, 0), else_=resets.c.wrong_codes_today),
            },
            where=and_(
                or_(window_over, resets.c.requests_in_window < max_requests),
                or_(day_over, resets.c.requests_today < daily_max_requests),
            ),
        )
        .returning(resets.c.user_id)
    )
    return (await conn.execute(statement)).first() is not None


async def lock_code(conn: AsyncConnection, user_id: int) -> Any | None:
    """The user's current code row, locked, with `live` = not expired by the database clock and
    `wrong_today` = wrong codes tried in the current day (0 once the day is over)."""
    return (
        await conn.execute(
            select(
                resets.c.code_hash,
                resets.c.attempts,
                resets.c.verified_at,
                (resets.c.expires_at > func.now()).label("live"),
                case((_day_over(), 0), else_=resets.c.wrong_codes_today).label("wrong_today"),
            )
            .where(resets.c.user_id == user_id)
            .with_for_update()
        )
    ).first()


async def record_wrong_attempt(conn: AsyncConnection, user_id: int) -> None:
    """Count a wrong code against the current code and the day (a new day starts if over)."""
    day_over = _day_over()
    await conn.execute(
        update(resets)
        .where(resets.c.user_id == user_id)
        .values(
            attempts=resets.c.attempts + 1,
            day_started_at=case((day_over, func.now()), else_=resets.c.day_started_at),
            requests_today=case((day_over, 0), else_=resets.c.requests_today),
            wrong_codes_today=case((day_over, 1), else_=resets.c.wrong_codes_today + 1),
        )
    )


async def mark_verified(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(
        update(resets).where(resets.c.user_id == user_id).values(verified_at=func.now())
    )


async def delete_codes(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(resets).where(resets.c.user_id == user_id))
