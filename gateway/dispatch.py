"""The request pipeline: route → session → access level → CSRF → body limit → handler/proxy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway import auth, debug, docs, health, openapi, publiclimits, streams
from gateway.clientip import client_ip
from gateway.csrf import origin_allowed
from gateway.identity_headers import forward_headers
from gateway.routes import GATEWAY, Access, Match
from gateway.runtime import GatewayRuntime, RequestContext
from stockmanager.contracts.events import RequestRefused
from stockmanager.contracts.fields import clip_text
from stockmanager.error_handlers import render
from stockmanager.errors import (
    ApiError,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from stockmanager.events import EventType
from stockmanager.identity import ROLE_ADMIN, ROLE_ROOT

log = logging.getLogger("gateway")

LocalHandler = Callable[[RequestContext], Awaitable[Response]]

# Every 503/504 the gateway answers (its own, or a service's passed on) tells the client when to
# try again: a restarted service or a reconnected server is back within seconds.
RETRY_AFTER_SECONDS = 1

LOCAL_HANDLERS: dict[tuple[str, str], LocalHandler] = {
    ("GET", "/api/health"): health.health,
    ("POST", "/api/login"): auth.login,
    ("POST", "/api/logout"): auth.logout,
    ("GET", "/api/session"): auth.current_session,
    ("POST", "/api/debug/log"): debug.debug_log,
    ("GET", "/api/debug/logs"): debug.debug_logs,
    ("POST", "/api/debug/command"): debug.debug_command,
    ("GET", "/api/openapi.json"): openapi.openapi_json,
    ("GET", "/api/docs"): docs.docs_page,
    ("GET", "/api/docs/{asset}"): docs.docs_asset,
}


def _local_handler(match: Match) -> LocalHandler:
    route = match.route
    pattern = route.upstream_path or route.pattern
    return LOCAL_HANDLERS[(route.method, pattern)]


async def dispatch(request: Request) -> Response:
    runtime: GatewayRuntime = request.app.state.gateway
    ctx: RequestContext | None = None
    try:
        ctx = await _build_context(request, runtime)
        response = await _handle(ctx)
    except ApiError as error:
        response = render(error)
    except RedisError as exc:
        # Sessions and rate limits live in Redis: without it nothing can be authorised.
        log.warning("redis unavailable", extra={"error": repr(exc)})
        response = render(ServiceUnavailable())
    except Exception:
        log.exception("unhandled gateway error")
        response = render(InternalError())
    if response.status_code in (503, 504) and "retry-after" not in response.headers:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if ctx is not None and ctx.match.route.changes_state and response.status_code >= 400:
        _publish_refused(ctx, response.status_code)
    return response


def request_path(request: Request) -> str:
    """`request.url.path` without building the whole URL (host header parsing, urlsplit) on
    every request: the path with `?`, `#` and `\\` escaped as Starlette's URL does."""
    return str(request.scope["path"]).replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def request_query(request: Request) -> str:
    """`request.url.query`, likewise (a `#` cannot reach here from uvicorn's parser; cut as
    urlsplit would)."""
    return str(request.scope["query_string"].decode()).partition("#")[0]


async def _build_context(request: Request, runtime: GatewayRuntime) -> RequestContext:
    path = request_path(request)
    found = runtime.routes.match(request.method, path)
    if found is None:
        raise NotFound()
    if isinstance(found, list):
        raise MethodNotAllowed(headers={"Allow": ", ".join(found)})
    request.scope["route_template"] = found.route.pattern
    settings = runtime.settings
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), runtime.trusted_proxies)
    token = request.cookies.get(settings.cookie_name)
    session = await runtime.sessions.get(token) if token else None
    ctx = RequestContext(
        request=request,
        runtime=runtime,
        match=found,
        request_id=request.scope.get("state", {}).get("request_id", ""),
        ip=ip,
        session=session,
    )
    return ctx


def _check_access(ctx: RequestContext) -> None:
    access = ctx.match.route.access
    if access is Access.PUBLIC:
        return
    if ctx.session is None:
        raise NotAuthenticated()
    role = ctx.session.role
    if access is Access.ADMIN and role not in (ROLE_ADMIN, ROLE_ROOT):
        raise Forbidden()
    if access is Access.ROOT and role != ROLE_ROOT:
        raise Forbidden()


async def _read_body(ctx: RequestContext) -> bytes:
    route = ctx.match.route
    limit = route.max_body or ctx.runtime.settings.max_body_bytes
    declared = ctx.request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge()
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in ctx.request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def _handle(ctx: RequestContext) -> Response:
    _check_access(ctx)
    route = ctx.match.route
    if route.changes_state and not origin_allowed(ctx.request, ctx.runtime.allowed_origins):
        raise Forbidden("Origen no permitido")
    # Before the body is read: a refused request costs neither the gateway nor the service.
    await publiclimits.enforce(ctx.runtime.redis, ctx.runtime.settings, route.limit, ctx.ip)
    ctx.body = await _read_body(ctx)
    if route.target == GATEWAY:
        return await _local_handler(ctx.match)(ctx)
    return await _proxy(ctx)


async def _proxy(ctx: RequestContext) -> Response:
    runtime = ctx.runtime
    route = ctx.match.route
    request = ctx.request
    path = ctx.match.upstream_path(request_path(request))
    query = request_query(request)
    headers = forward_headers(request, ctx.identity(), runtime.settings.internal_secret, ctx)
    if route.stream:
        path_qs = f"{path}?{query}" if query else path
        return await streams.proxy_stream(ctx, route.target, path_qs, headers)
    upstream = await runtime.proxy.forward(
        route.target,
        request.method,
        f"{path}?{query}" if query else path,
        headers,
        ctx.body,
        stream=route.stream,
    )
    if upstream.stream is not None:
        return StreamingResponse(
            upstream.stream, status_code=upstream.status, headers=dict(upstream.headers)
        )
    return Response(upstream.body, status_code=upstream.status, headers=dict(upstream.headers))


def _publish_refused(ctx: RequestContext, status: int) -> None:
    route = ctx.match.route
    if route.target == GATEWAY and route.pattern in ("/api/login", "/api/debug/command"):
        return  # these publish their own, more specific events
    ctx.runtime.events.publish(
        ctx.event(
            EventType.REQUEST_REFUSED,
            RequestRefused(
                method=route.method,
                path=clip_text(request_path(ctx.request)),
                http_status=status,
                service=route.target,
            ),
            status="error",
        )
    )
