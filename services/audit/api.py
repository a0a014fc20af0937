"""HTTP endpoints of the audit service (thin: parse, check, query, shape).

Every list takes the same query parameters, declared once below; the response models in
schemas.py document the bodies the handlers send.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from services.audit import schemas, service
from services.audit.repository import Filters
from services.audit.runtime import Runtime
from stockmanager.contracts.fields import BIGINT_MAX
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.http import json_response
from stockmanager.pagination import parse_offset_limit
from stockmanager.service_app import AdminUser, CurrentUser, RootUser

router = APIRouter(route_class=ContractRoute, tags=["audit"])

# Raw strings: bad numbers fall back to defaults (never 500); bad dates are 400.
Action = Annotated[
    str | None,
    Query(
        description=(
            "Exact action name, case-insensitive (`update`, `login`, ...); empty = no filter"
        ),
        examples=["update"],
    ),
]
DateFrom = Annotated[
    str | None,
    Query(
        alias="from",
        description=(
            "Inclusive lower bound on the event time: a date `YYYY-MM-DD` (start of that "
            "business day) or an ISO 8601 timestamp (business time zone when it has no "
            "offset). Malformed: 400"
        ),
        examples=["2026-11-01"],
    ),
]
DateTo = Annotated[
    str | None,
    Query(
        alias="to",
        description=(
            "Upper bound: a date means up to the end of that business day; a timestamp is "
            "inclusive. Malformed: 400"
        ),
        examples=["2026-11-30"],
    ),
]
Limit = Annotated[
    str | None,
    Query(
        description=(
            "Page size: default 50 for the lists and 500 for the entity trail, clamped to "
            "[1, 500]; a non-integer falls back to the default"
        ),
        examples=["50"],
    ),
]
Offset = Annotated[
    str | None,
    Query(
        description="Records to skip, default 0; negative or non-integer values count as 0",
        examples=["0"],
    ),
]

# A PostgreSQL bigint; an id outside it is 400 `Parámetros inválidos` (never a database error).
UserId = Annotated[int, Path(ge=-BIGINT_MAX, le=BIGINT_MAX, description="A user id")]
EntityId = Annotated[int, Path(ge=-BIGINT_MAX, le=BIGINT_MAX, description="The entity's id")]
EntityType = Annotated[
    str,
    Path(description="`product`, `sale`, `user`, `application`, `notification` (any case)"),
]

FILTER_ERRORS = "A malformed `from`/`to` is 400; `from` after `to` simply matches nothing."


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


@router.get(
    "/api/user/{user_id}",
    response_model=schemas.AuditPage,
    summary="The records whose actor is this user, newest first",
    description=(
        "Your own history, or anyone's for root (admins included: another user's id is 403). "
        "Records of anonymous actors belong to no user. An id without records is 200 with "
        f"`total` 0. {FILTER_ERRORS}"
    ),
    responses=error_responses(400, 403),
)
async def user_history(
    runtime: Runtime,
    caller: CurrentUser,
    user_id: UserId,
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


@router.get(
    "/api/all",
    response_model=schemas.AuditPage,
    summary="Every audit record, newest first (root)",
    description=FILTER_ERRORS,
    responses=error_responses(400),
)
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


@router.get(
    "/api/entity/{entity_type}/{entity_id}",
    response_model=schemas.EntityTrail,
    summary="The history of one entity, oldest first (admin, root)",
    description=(
        "`entity_type` is matched case-insensitively (`product`, `sale`, `user`, "
        "`application`, `notification`); an unknown type or id is 200 with an empty trail. "
        "A product's trail includes the bulk price/stock changes that listed it, narrowed to "
        f"its entry. {FILTER_ERRORS}"
    ),
    responses=error_responses(400),
)
async def entity_trail(
    runtime: Runtime,
    caller: AdminUser,
    entity_type: EntityType,
    entity_id: EntityId,
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
