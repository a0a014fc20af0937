"""HTTP endpoints of the notifications service (thin: parse, call the service, shape the answer).

Every write publishes the affected users to the live streams after its transaction commits.
Each route declares its body, query parameters and response model (schemas.py); the handlers
still answer with fast `json_response(...)` bodies, which the models document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from services.notifications import schemas, service
from services.notifications.fanout import NotificationHub
from services.notifications.runtime import NotificationsRuntime, Runtime
from services.notifications.sse import EventStreamResponse, sse_frame
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.errors import RateLimited
from stockmanager.http import json_response
from stockmanager.identity import Identity
from stockmanager.pagination import parse_offset_limit
from stockmanager.service_app import AdminUser, CurrentUser

router = APIRouter(prefix="/api/notifications", route_class=ContractRoute, tags=["notifications"])

OWN_ONLY = (
    "A user only ever sees and marks their own notifications: another user's id answers 404, "
    "exactly like an id that does not exist (admins included)."
)
STREAM_DESCRIPTION = """Server-Sent Events (`text/event-stream`) of the caller's unread list.

- On connect: one `init` event whose `data` is `{"notifications": [...5 newest unread...],
  "count": N}` (`count`, not `unread_count`, as upstream).
- After every change of the caller's notifications (new, read, read-all, delete), on any
  replica: one `update` event with the 10 newest unread and the count.
- After every quiet interval (25 s by default): a `: heartbeat` comment line.

The stream ends by itself after `STOCKMANAGER_SSE_MAX_LIFETIME_SECONDS` (default 3600 s); an
`EventSource` reconnects and receives a fresh `init`. It also ends within a few seconds of the
session ending (logout, user disabled, password changed).

Open streams are limited per user (`STOCKMANAGER_SSE_MAX_STREAMS_PER_USER`, default 10, across
gateway replicas), per gateway process and per notifications process
(`STOCKMANAGER_SSE_MAX_STREAMS`, default 1000): one more is answered 429 with `Retry-After`.
"""
TOO_MANY_STREAMS = "Demasiadas conexiones en vivo abiertas. Cierra alguna e intenta de nuevo"
SSE_EXAMPLE = (
    'event: init\ndata: {"notifications":[{"id":31,"title":"Venta registrada","message":"...",'
    '"type":"success","action_url":null,"created_at":"2026-11-27 10:15:02"}],"count":1}\n\n'
    ": heartbeat\n\n"
)

Limit = Annotated[
    str | None,
    Query(
        description=(
            f"Page size, default {service.ALL_DEFAULT_LIMIT}, clamped to "
            f"[1, {service.ALL_MAX_LIMIT}]; a non-integer falls back to the default"
        ),
        examples=["20"],
    ),
]
Offset = Annotated[
    str | None,
    Query(
        description=(
            "Notifications to skip, default 0; negative counts as 0, a non-integer falls back to 0"
        ),
        examples=["0"],
    ),
]


def _hub(runtime: NotificationsRuntime) -> NotificationHub:
    return runtime.resources.hub


def _user_id(caller: Identity) -> int:
    assert caller.user_id is not None  # CurrentUser guarantees an authenticated caller
    return caller.user_id


@router.get(
    "/unread",
    response_model=schemas.UnreadList,
    summary="The caller's unread notifications (up to 10) and their count",
)
async def unread(runtime: Runtime, caller: CurrentUser) -> Response:
    async with runtime.db.connect() as conn:
        payload = await service.unread(
            conn, _user_id(caller), service.UNREAD_LIMIT, runtime.settings.tz
        )
    return json_response(
        {"notifications": payload["notifications"], "unread_count": payload["count"]}
    )


@router.get(
    "/all",
    response_model=list[schemas.Notification],
    summary="The caller's notifications, newest first, with is_read",
    description="A bare array (upstream's shape), paged with `limit` and `offset`.",
    responses=error_responses(400),
)
async def all_notifications(
    runtime: Runtime, caller: CurrentUser, limit: Limit = None, offset: Offset = None
) -> Response:
    start, size = parse_offset_limit(
        offset,
        limit,
        default_limit=service.ALL_DEFAULT_LIMIT,
        max_limit=service.ALL_MAX_LIMIT,
    )
    async with runtime.db.connect() as conn:
        items = await service.list_all(
            conn, _user_id(caller), offset=start, limit=size, tz=runtime.settings.tz
        )
    return json_response(items)


@router.post(
    "/read-all",
    response_model=schemas.Message,
    summary="Mark all of the caller's notifications as read",
    description="No body is needed.",
)
async def read_all(runtime: Runtime, caller: CurrentUser) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.mark_all_read(conn, _user_id(caller))
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_ALL_READ})


@router.post(
    "/create",
    status_code=201,
    response_model=schemas.Message,
    summary="Create a notification for a user (admin, root)",
    description=(
        "The recipient must exist (404 `Usuario no encontrado`) and be active with an accepted "
        "application (400 `El usuario no está activo`). Publishes `notification.created` and "
        "pushes the change to the recipient's streams."
    ),
    responses=error_responses(400, 404),
)
async def create(runtime: Runtime, caller: AdminUser, new: schemas.NewNotification) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.create_manual(conn, caller, new)
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_CREATED}, status_code=201)


@router.post(
    "/{notification_id:int}/read",
    response_model=schemas.Message,
    summary="Mark one of the caller's notifications as read",
    description=f"No body is needed; marking one that is already read is also 200. {OWN_ONLY}",
    responses=error_responses(404),
)
async def read_one(runtime: Runtime, caller: CurrentUser, notification_id: int) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.mark_read(conn, _user_id(caller), notification_id)
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_READ})


@router.delete(
    "/{notification_id:int}/delete",
    response_model=schemas.Message,
    summary="Delete any user's notification (admin, root)",
    description="A hard delete. Publishes `notification.deleted`.",
    responses=error_responses(404),
)
async def delete(runtime: Runtime, caller: AdminUser, notification_id: int) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.delete(conn, caller, notification_id)
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_DELETED})


@router.get(
    "/stream",
    summary="Live stream of the caller's unread notifications (Server-Sent Events)",
    description=STREAM_DESCRIPTION,
    response_class=Response,
    responses={
        200: {
            "description": (
                "An open-ended `text/event-stream`; each event's `data` is a JSON object "
                '`{"notifications": [UnreadNotification...], "count": int}`'
            ),
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": SSE_EXAMPLE,
                }
            },
        },
        **error_responses(429),
    },
)
async def stream(runtime: Runtime, caller: CurrentUser) -> Response:
    user_id = _user_id(caller)
    settings = runtime.settings
    if _hub(runtime).stream_count >= settings.sse_max_streams:
        raise RateLimited(TOO_MANY_STREAMS, headers={"Retry-After": "5"})

    async def initial_frame() -> bytes:
        async with runtime.db.connect() as conn:
            payload = await service.unread(conn, user_id, service.STREAM_INIT_LIMIT, settings.tz)
        return sse_frame("init", payload)

    return EventStreamResponse(
        _hub(runtime),
        user_id,
        initial_frame,
        heartbeat=settings.sse_heartbeat_seconds,
        max_lifetime=settings.sse_max_lifetime_seconds,
    )
