"""HTTP helpers shared by services: fast JSON responses and strict JSON body parsing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stockmanager.errors import InvalidJson, UnsupportedMediaType


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Money is NUMERIC(12,2) in the database and a JSON number on the wire.
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(data, status_code=status_code, headers=headers)


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return True  # curl -d without a header still sends a body we can try to read
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def parse_json_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a request body that must be a JSON object; 400 or 415 otherwise."""
    if content_type and not is_json_content_type(content_type):
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "text/plain":  # some clients label JSON as text/plain
            raise UnsupportedMediaType()
    if not raw.strip():
        raise InvalidJson("Se requiere un cuerpo JSON")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson() from exc
    if not isinstance(data, dict):
        raise InvalidJson("El cuerpo de la petición debe ser un objeto JSON")
    return data


async def json_object(request: Request) -> dict[str, Any]:
    """FastAPI dependency: the request body as a JSON object."""
    return parse_json_object(await request.body(), request.headers.get("content-type"))


async def optional_json_object(request: Request) -> dict[str, Any]:
    """Like `json_object`, but an empty body is an empty object (for bodiless POST actions)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    return parse_json_object(raw, request.headers.get("content-type"))
