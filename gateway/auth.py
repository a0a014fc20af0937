"""POST /api/login, POST /api/logout, GET /api/session (decisions §2)."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from gateway.proxy import UpstreamResponse
from gateway.runtime import RequestContext
from gateway.schemas import LOGIN_NAME_MAX, LOGIN_PASSWORD_MAX, LoginRequest
from stockmanager.contracts.events import LoginFailed
from stockmanager.contracts.fields import clip_text
from stockmanager.contracts.validation import read_json_object
from stockmanager.errors import ApiError, ServiceUnavailable, ValidationFailed
from stockmanager.events import EventType, new_event
from stockmanager.http import json_response
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity


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


def _too_long(label: str, limit: int, actual: int) -> ValidationFailed:
    # The users service's wording (`Usuario: Máximo 30 caracteres (tiene 31)`).
    return ValidationFailed(f"{label}: Máximo {limit} caracteres (tiene {actual})")


def _credentials(ctx: RequestContext) -> tuple[str, str]:
    """The trimmed login name and the password, refused (400) when either is missing or longer
    than any account's could be: before the limiter, Redis, the users service or Argon2 see it."""
    body = read_json_object(ctx.body, ctx.request.headers.get("content-type"))
    try:
        credentials = LoginRequest.model_validate(body)
    except ValidationError:
        raise ValidationFailed("Usuario y contraseña requeridos") from None
    username, password = credentials.username.strip(), credentials.password
    if len(username) > LOGIN_NAME_MAX:
        raise _too_long("Usuario", LOGIN_NAME_MAX, len(username))
    if len(password) > LOGIN_PASSWORD_MAX:
        raise _too_long("Contraseña", LOGIN_PASSWORD_MAX, len(password))
    return username, password


async def login(ctx: RequestContext) -> Response:
    username, password = _credentials(ctx)
    runtime = ctx.runtime
    try:
        # A failure slot is taken before the password is checked (atomically, in Redis), so
        # parallel guesses cannot all pass a check made before any of them failed.
        await runtime.limiter.reserve(username, ctx.ip)
    except ApiError:
        _publish_failed(ctx, username, "rate_limited")
        raise
    identity = ctx.identity()
    try:
        upstream = await _verify(ctx, identity, username, password)
    except BaseException:
        # No answer on the password: give the slot back (if Redis fails too, the slot simply
        # expires with its window).
        with contextlib.suppress(Exception):
            await runtime.limiter.release(username, ctx.ip)
        raise
    payload: dict[str, Any] = orjson.loads(upstream.body or b"{}")
    if upstream.status != 200:
        if upstream.status != 401:  # only a wrong password keeps its failure slot
            await runtime.limiter.release(username, ctx.ip)
        if upstream.status in (401, 403):
            _publish_failed(ctx, username, _error_code(payload))
        if upstream.status >= 500:
            raise ServiceUnavailable()
        return json_response(payload, status_code=upstream.status)

    await runtime.limiter.succeeded(username, ctx.ip)
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


async def _verify(
    ctx: RequestContext, identity: Identity, username: str, password: str
) -> UpstreamResponse:
    """The users service's answer on these credentials (`POST /internal/auth/verify`)."""
    runtime = ctx.runtime
    return await runtime.proxy.forward(
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


def _publish_failed(ctx: RequestContext, username: str, reason: str | None) -> None:
    # The name is bounded already (LOGIN_NAME_MAX); clipping keeps the event small regardless.
    ctx.runtime.events.publish(
        ctx.event(
            EventType.LOGIN_FAILED,
            LoginFailed(username=clip_text(username), reason=reason),
            status="error",
            entity_type="user",
        )
    )


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
