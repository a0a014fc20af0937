"""HTTP endpoints of the audit service (thin: parse, check, query, shape)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from services.audit import service
from services.audit.repository import Filters
from services.audit.runtime import Runtime
from stockmanager.http import json_response
from stockmanager.pagination import parse_offset_limit
from stockmanager.service_app import AdminUser, CurrentUser, RootUser

router = APIRouter()

# Raw strings: bad numbers fall back to defaults (never 500); bad dates are 400.
Action = Annotated[str | None, Query()]
DateFrom = Annotated[str | None, Query(alias="from")]
DateTo = Annotated[str | None, Query(alias="to")]
Limit = Annotated[str | None, Query()]
Offset = Annotated[str | None, Query()]


def _list_query(
    settings: Any,
    action: str | None,
    date_from: str | None,
    date_to: str | None,
    limit: str | None,
    offset: str | None,
    default_limit: int,
) -> tuple[Filters, int, int]:
    """The filters and the page every audit list takes (bad dates 400, bad numbers default)."""
    filters = service.parse_filters(action, date_from, date_to, settings.tz)
    start, size = parse_offset_limit(
        offset, limit, default_limit=default_limit, max_limit=settings.audit_max_limit
    )
    return filters, start, size


@router.get("/api/user/{user_id}")
async def user_history(
    runtime: Runtime,
    caller: CurrentUser,
    user_id: int,
    action: Action = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Limit = None,
    offset: Offset = None,
) -> Response:
    service.check_history_access(caller, user_id)
    settings = runtime.settings
    filters, start, size = _list_query(
        settings, action, date_from, date_to, limit, offset, settings.audit_default_limit
    )
    async with runtime.db.connect() as conn:
        body = await service.user_history(
            conn, user_id, filters, offset=start, limit=size, tz=settings.tz
        )
    return json_response(body)


@router.get("/api/all")
async def all_records(
    runtime: Runtime,
    caller: RootUser,
    action: Action = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Limit = None,
    offset: Offset = None,
) -> Response:
    settings = runtime.settings
    filters, start, size = _list_query(
        settings, action, date_from, date_to, limit, offset, settings.audit_default_limit
    )
    async with runtime.db.connect() as conn:
        body = await service.all_records(conn, filters, offset=start, limit=size, tz=settings.tz)
    return json_response(body)


@router.get("/api/entity/{entity_type}/{entity_id}")
async def entity_trail(
    runtime: Runtime,
    caller: AdminUser,
    entity_type: str,
    entity_id: int,
    action: Action = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Limit = None,
    offset: Offset = None,
) -> Response:
    settings = runtime.settings
    filters, start, size = _list_query(
        settings, action, date_from, date_to, limit, offset, settings.audit_trail_default_limit
    )
    async with runtime.db.connect() as conn:
        body = await service.entity_history(
            conn, entity_type, entity_id, filters, offset=start, limit=size, tz=settings.tz
        )
    return json_response(body)
