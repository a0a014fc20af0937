"""Registration applications: the pending list, approve and reject (reference §2.4).

Only pending applications can be decided (409 otherwise, 404 for an unknown id); the decision is
a conditional UPDATE on the locked row, so two admins deciding at once cannot both win.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from services.users import events, repository
from services.users.events import emit
from stockmanager.errors import Conflict, NotFound
from stockmanager.identity import Identity
from stockmanager.pagination import Page, pages_for
from stockmanager.timefmt import local_str


class ApplicationNotFound(NotFound):
    code = "application_not_found"
    default_message = "Solicitud no encontrada"


class ApplicationNotPending(Conflict):
    code = "application_not_pending"
    default_message = "La solicitud no está pendiente"


async def list_pending(conn: AsyncConnection, page: Page, tz: ZoneInfo) -> dict[str, Any]:
    rows, total = await repository.list_pending(conn, offset=page.offset, limit=page.limit)
    return {
        "data": [
            {
                "id": row.id,
                "username": row.username,
                "email": row.email,
                "created_at": local_str(row.created_at, tz),
            }
            for row in rows
        ],
        "page": page.page,
        "pages": pages_for(total, page.limit),
        "total": total,
    }


async def decide(conn: AsyncConnection, actor: Identity, user_id: int, *, approve: bool) -> None:
    current = await repository.get_user(conn, user_id, for_update=True)
    if current is None:
        raise ApplicationNotFound()
    if current.application != "pending":
        raise ApplicationNotPending()
    # Approving activates the account; rejecting leaves it disabled (status as it was).
    updated = await repository.decide_application(
        conn,
        user_id,
        application="accepted" if approve else "rejected",
        status=1 if approve else current.status,
    )
    if updated is None:  # cannot happen under the row lock; kept as a guard
        raise ApplicationNotPending()
    await emit(
        conn,
        events.application_decided(actor, user_id, current, updated, approve=approve),
    )
