"""/api/debug/* (root only): client log lines, the central log tail, named diagnostics.

`/api/debug/command` never executes code: it runs one diagnostic from a fixed list.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from gateway.health import consumer_lags, deep_health, redis_text
from gateway.routes import ROUTE_MAP
from gateway.runtime import RequestContext
from gateway.schemas import DebugCommandRequest, DebugLogRequest
from stockmanager.contracts.events import DebugCommand
from stockmanager.contracts.fields import clip_text
from stockmanager.contracts.validation import read_json_object
from stockmanager.errors import ValidationFailed
from stockmanager.events import EventType
from stockmanager.http import json_response

client_log = logging.getLogger("client")

# A client's log line: its message and its context (as JSON) are clipped to these many
# characters, so one line in the central log has a bounded size.
CLIENT_MESSAGE_MAX = 2000
CLIENT_CONTEXT_MAX = 4000


def _clipped_value(value: Any) -> Any:
    """The client's timestamp as sent when it is a number or short text, else clipped text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return clip_text(value if isinstance(value, str) else orjson.dumps(value, default=str).decode())


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


async def debug_log(ctx: RequestContext) -> Response:
    body = read_json_object(ctx.body, ctx.request.headers.get("content-type"))
    try:
        entry = DebugLogRequest.model_validate(body)
    except ValidationError:
        raise ValidationFailed("Faltan campos requeridos") from None
    level = _LEVELS.get(str(entry.level).lower(), logging.DEBUG)
    context = entry.context if isinstance(entry.context, dict) else {}
    client_log.log(
        level,
        "[JS CLIENT] %s | Context: %s",
        clip_text(entry.message, CLIENT_MESSAGE_MAX),
        clip_text(orjson.dumps(context, default=str).decode(), CLIENT_CONTEXT_MAX),
        extra={
            "client_timestamp": _clipped_value(entry.timestamp),
            "user_id": ctx.session and ctx.session.user_id,
        },
    )
    return json_response({"status": "logged"})


async def debug_logs(ctx: RequestContext) -> Response:
    runtime = ctx.runtime
    try:
        entries = await runtime.redis.xrevrange(runtime.settings.log_stream, count=100)
    except Exception:  # noqa: BLE001 - upstream's shape for "unreadable"
        return json_response({"logs": [], "error": "No logs available"})
    lines = [
        redis_text(fields[b"line"]) + "\n"
        for _, fields in reversed(entries or [])
        if fields is not None and b"line" in fields
    ]
    return json_response({"logs": lines})


async def _cmd_health(ctx: RequestContext) -> Any:
    return await deep_health(ctx.runtime)


async def _cmd_queues(ctx: RequestContext) -> Any:
    runtime = ctx.runtime
    lags = await consumer_lags(runtime.redis, runtime.settings.event_stream)
    dead = await runtime.redis.xlen(runtime.settings.event_stream + ":dead")
    return {**lags, "dead_letters": int(dead)}


async def _cmd_versions(ctx: RequestContext) -> Any:
    packages = (
        "stockmanager",
        "fastapi",
        "starlette",
        "uvicorn",
        "aiohttp",
        "sqlalchemy",
        "psycopg",
        "redis",
        "alembic",
        "pydantic",
    )
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = await ctx.runtime.redis.info("server")
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "redis_server": info.get("redis_version"),
    }


async def _cmd_routes(ctx: RequestContext) -> Any:
    return [
        {"method": r.method, "path": r.pattern, "service": r.target, "access": str(r.access)}
        for r in ROUTE_MAP
    ]


async def _cmd_sessions(ctx: RequestContext) -> Any:
    count = 0
    async for _ in ctx.runtime.redis.scan_iter(match="sm:session:*", count=1000):
        count += 1
    return {"active_sessions": count}


COMMANDS: dict[str, Callable[[RequestContext], Awaitable[Any]]] = {
    "health": _cmd_health,
    "queues": _cmd_queues,
    "routes": _cmd_routes,
    "sessions": _cmd_sessions,
    "versions": _cmd_versions,
}


async def debug_command(ctx: RequestContext) -> Response:
    body = read_json_object(ctx.body, ctx.request.headers.get("content-type"))
    allowed = sorted(COMMANDS)
    try:
        name = DebugCommandRequest.model_validate(body).command
    except ValidationError:
        refused = body.get("command")
        ctx.runtime.events.publish(
            ctx.event(
                EventType.DEBUG_COMMAND_RUN,
                DebugCommand(
                    command=clip_text(refused) if isinstance(refused, str) else None, refused=True
                ),
                status="error",
                entity_type="debug",
            )
        )
        raise ValidationFailed(
            "Comando no permitido. Comandos disponibles: " + ", ".join(allowed), allowed=allowed
        ) from None
    output = await COMMANDS[name](ctx)
    ctx.runtime.events.publish(
        ctx.event(EventType.DEBUG_COMMAND_RUN, DebugCommand(command=name), entity_type="debug")
    )
    return json_response({"command": name, "output": output})
