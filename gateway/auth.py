"""POST /api/login, POST /api/logout, GET /api/session (decisions §2)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from gateway.runtime import RequestContext
from gateway.schemas import LoginRequest
from stockmanager.contracts.events import LoginFailed
from stockmanager.contracts.validation import read_json_object
from stockmanager.errors import ApiError, ServiceUnavailable, ValidationFailed
from stockmanager.events import EventType, new_event
from stockmanager.http import json_response
from stockmanager.identity import IDENTITY_HEADER, sign_identity


def _set_cookie(ctx: RequestContext, response: Response, token: str) -> None:
    settings = ctx.runtime.settings
    response.set_cookie(
        settings.cookie_name,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


async def login(ctx: RequestContext) -> Response:
    body = read_json_object(ctx.body, ctx.request.headers.get("content-type"))
    try:
        credentials = LoginRequest.model_validate(body)
    except ValidationError:
        raise ValidationFailed("Usuario y contraseña requeridos") from None
    username, password = credentials.username, credentials.password
    runtime = ctx.runtime
    try:
        await runtime.limiter.check(username, ctx.ip)
    except ApiError:
        runtime.events.publish(
            ctx.event(
                EventType.LOGIN_FAILED,
                LoginFailed(username=username, reason="rate_limited"),
                status="error",
                entity_type="user",
            )
        )
        raise
    identity = ctx.identity()
    upstream = await runtime.proxy.forward(
        "users",
        "POST",
        "/internal/auth/verify",
        {
            "content-type": "application/json",
            IDENTITY_HEADER: sign_identity(identity, runtime.settings.internal_secret),
            "x-request-id": ctx.request_id,
        },
        orjson.dumps({"username": username, "password": password}),
    )
    payload: dict[str, Any] = orjson.loads(upstream.body or b"{}")
    if upstream.status != 200:
        if upstream.status == 401:
            await runtime.limiter.record_failure(username, ctx.ip)
        if upstream.status in (401, 403):
            runtime.events.publish(
                ctx.event(
                    EventType.LOGIN_FAILED,
                    LoginFailed(username=username, reason=_error_code(payload)),
                    status="error",
                    entity_type="user",
                )
            )
        if upstream.status >= 500:
            raise ServiceUnavailable()
        return json_response(payload, status_code=upstream.status)

    await runtime.limiter.reset(username, ctx.ip)
    if ctx.session is not None:  # a new token on every login (no session fixation)
        await runtime.sessions.delete_key(ctx.session.user_id, ctx.session.key)
    user_id, stored_username, role = payload["user_id"], payload["username"], payload["role"]
    token = await runtime.sessions.create(user_id, stored_username, role)
    actor = identity.__class__(
        user_id=user_id,
        username=stored_username,
        role=role,
        request_id=ctx.request_id,
        ip=ctx.ip,
        issued_at=identity.issued_at,
    )
    runtime.events.publish(
        new_event(EventType.LOGIN_SUCCEEDED, identity=actor, entity_type="user", entity_id=user_id)
    )
    response = json_response(
        {"success": True, "user_id": user_id, "username": stored_username, "role": role}
    )
    _set_cookie(ctx, response, token)
    return response


def _error_code(payload: dict[str, Any]) -> str | None:
    code = payload.get("code")
    return None if code is None else str(code)


async def logout(ctx: RequestContext) -> Response:
    assert ctx.session is not None  # the route map requires a session
    await ctx.runtime.sessions.delete_key(ctx.session.user_id, ctx.session.key)
    ctx.runtime.events.publish(
        ctx.event(EventType.LOGOUT, entity_type="user", entity_id=ctx.session.user_id)
    )
    response = json_response({"message": "Sesión cerrada"})
    response.delete_cookie(
        ctx.runtime.settings.cookie_name,
        path="/",
        httponly=True,
        samesite="lax",
        secure=ctx.runtime.settings.cookie_secure,
    )
    return response


async def current_session(ctx: RequestContext) -> Response:
    assert ctx.session is not None
    return json_response(
        {"user_id": ctx.session.user_id, "username": ctx.session.username, "role": ctx.session.role}
    )
