"""HTTP endpoints of the metrics service (thin: parse, call the service, shape the answer).

The gateway's route map already limits `/api/metrics` and `/api/never-sold` to admin/root and
`/api/stats` to logged-in users; the service checks the same again (CurrentUser / AdminUser).

Reports read one REPEATABLE READ snapshot. When a report needs item sums that are not memoised
yet (memo.py), the snapshot is left, the sums are computed and stored in their own short
transaction, and the report starts over in a new snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from services.metrics import schemas, service
from services.metrics.runtime import MetricsRuntime, Runtime
from services.metrics.window import DEFAULT_PERIOD, MAX_DAYS, parse_window
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.http import json_response
from stockmanager.service_app import AdminUser, CurrentUser
from stockmanager.timefmt import today

log = logging.getLogger("stockmanager.metrics")
router = APIRouter(route_class=ContractRoute, tags=["metrics"])

# Snapshots tried with the memo before answering without it (the rollups kept changing).
MEMO_ATTEMPTS = 3

Prepare = Callable[[AsyncConnection, bool], Awaitable[service.Prepared]]


async def _report(runtime: MetricsRuntime, prepare: Prepare) -> dict[str, Any]:
    for attempt in range(MEMO_ATTEMPTS + 1):
        use_memo = attempt < MEMO_ATTEMPTS
        async with runtime.db.connect() as conn:
            await service.begin_snapshot(conn)
            prepared = await prepare(conn, use_memo)
            if not prepared.missing:
                return await prepared.run(conn)
        try:
            async with runtime.transaction() as conn:
                await service.fill_memos(conn, prepared.missing, prepared.version)
        except DBAPIError:
            log.warning("metrics memo fill failed; retrying", exc_info=True)
    raise AssertionError("unreachable: the last attempt runs without the memo")


Period = Annotated[
    str | None,
    Query(
        description=(
            f"Days of the window ending today (or on `to`), an integer from 1 to {MAX_DAYS}; "
            f"default {DEFAULT_PERIOD}; ignored when both `from` and `to` are given; "
            "anything else is 400"
        ),
        examples=["30"],
    ),
]
DateFrom = Annotated[
    str | None,
    Query(
        alias="from",
        description="First day `YYYY-MM-DD` (business time zone); alone: up to today",
        examples=["2026-01-01"],
    ),
]
DateTo = Annotated[
    str | None,
    Query(
        alias="to",
        description="Last day `YYYY-MM-DD`; alone: the `period` days ending on it",
        examples=["2026-01-31"],
    ),
]


@router.get(
    "/api/stats",
    response_model=schemas.Stats,
    summary="Dashboard counters",
)
async def stats(runtime: Runtime, caller: CurrentUser) -> Response:
    tz = runtime.settings.tz
    async with runtime.db.connect() as conn:
        # One statement, one snapshot: no BEGIN/ROLLBACK round trips needed.
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        body = await service.get_stats(conn, tz, today(tz))
    return json_response(body)


@router.get(
    "/api/metrics",
    response_model=schemas.Metrics,
    summary="The analytics report of a window of business days (admin, root)",
    description=(
        "The window is `period` days ending today by default (7), `from`..`to` when both are "
        "given; the comparison window has the same length and ends the day before. 400 for a "
        "date that is not a real `YYYY-MM-DD`, `from` after `to`, a `period` that is not an "
        f"integer from 1 to {MAX_DAYS}, or a window longer than {MAX_DAYS} days. Every figure "
        "includes every committed sale."
    ),
    responses=error_responses(400),
)
async def metrics(
    runtime: Runtime,
    caller: AdminUser,
    period: Period = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> Response:
    tz = runtime.settings.tz
    current_day = today(tz)
    window = parse_window(period=period, date_from=date_from, date_to=date_to, today=current_day)

    async def prepare(conn: AsyncConnection, use_memo: bool) -> service.Prepared:
        return await service.prepare_metrics(conn, window, tz, current_day, use_memo=use_memo)

    return json_response(await _report(runtime, prepare))


@router.get(
    "/api/never-sold",
    response_model=schemas.NeverSold,
    summary="Active products that were never sold (admin, root)",
)
async def never_sold(runtime: Runtime, caller: AdminUser) -> Response:
    tz = runtime.settings.tz
    current_day = today(tz)

    async def prepare(conn: AsyncConnection, use_memo: bool) -> service.Prepared:
        return await service.prepare_never_sold(conn, tz, current_day, use_memo=use_memo)

    return json_response(await _report(runtime, prepare))
