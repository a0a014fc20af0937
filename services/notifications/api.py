"""HTTP endpoints of the notifications service (thin: parse, call the service, shape the answer).

Every write publishes the affected users to the live streams after its transaction commits.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from services.notifications import schemas, service
from services.notifications.fanout import NotificationHub
from services.notifications.runtime import NotificationsRuntime, Runtime
from services.notifications.sse import EventStreamResponse, sse_frame
from stockmanager.http import json_object, json_response
from stockmanager.identity import Identity
from stockmanager.pagination import parse_offset_limit
from stockmanager.service_app import AdminUser, CurrentUser

router = APIRouter(prefix="/api/notifications")

JsonBody = Annotated[dict[str, Any], Depends(json_object)]


def _hub(runtime: NotificationsRuntime) -> NotificationHub:
    return runtime.resources.hub


def _user_id(caller: Identity) -> int:
    assert caller.user_id is not None  # CurrentUser guarantees an authenticated caller
    return caller.user_id


@router.get("/unread")
async def unread(runtime: Runtime, caller: CurrentUser) -> Response:
    async with runtime.db.connect() as conn:
        payload = await service.unread(
            conn, _user_id(caller), service.UNREAD_LIMIT, runtime.settings.tz
        )
    return json_response(
        {"notifications": payload["notifications"], "unread_count": payload["count"]}
    )


@router.get("/all")
async def all_notifications(runtime: Runtime, caller: CurrentUser, request: Request) -> Response:
    offset, limit = parse_offset_limit(
        request.query_params.get("offset"),
        request.query_params.get("limit"),
        default_limit=service.ALL_DEFAULT_LIMIT,
        max_limit=service.ALL_MAX_LIMIT,
    )
    async with runtime.db.connect() as conn:
        items = await service.list_all(
            conn, _user_id(caller), offset=offset, limit=limit, tz=runtime.settings.tz
        )
    return json_response(items)


@router.post("/read-all")
async def read_all(runtime: Runtime, caller: CurrentUser) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.mark_all_read(conn, _user_id(caller))
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_ALL_READ})


@router.post("/create")
async def create(runtime: Runtime, caller: AdminUser, body: JsonBody) -> Response:
    new = schemas.parse_new_notification(body)
    async with runtime.transaction() as conn:
        changed = await service.create_manual(conn, caller, new)
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_CREATED}, status_code=201)


@router.post("/{notification_id:int}/read")
async def read_one(runtime: Runtime, caller: CurrentUser, notification_id: int) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.mark_read(conn, _user_id(caller), notification_id)
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_READ})


@router.delete("/{notification_id:int}/delete")
async def delete(runtime: Runtime, caller: AdminUser, notification_id: int) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.delete(conn, caller, notification_id)
    await _hub(runtime).publish(changed)
    return json_response({"message": schemas.MESSAGE_DELETED})


@router.get("/stream")
async def stream(runtime: Runtime, caller: CurrentUser) -> Response:
    user_id = _user_id(caller)
    settings = runtime.settings

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
