"""HTTP helpers shared by services: fast JSON responses (bodies are read by
`stockmanager.contracts.validation`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse

from stockmanager.contracts.validation import read_json_object


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Money is NUMERIC(12,2) in the database and a JSON number on the wire.
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSONResponse(StarletteJSONResponse):
    # A Starlette JSONResponse (rendered with orjson), so FastAPI documents the routes'
    # response models instead of `{"type": "string"}`.
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(data, status_code=status_code, headers=headers)


async def json_object(request: Request) -> dict[str, Any]:
    """FastAPI dependency: the request body as a JSON object."""
    return read_json_object(await request.body(), request.headers.get("content-type"))


async def optional_json_object(request: Request) -> dict[str, Any]:
    """Like `json_object`, but an empty body is an empty object (for bodiless POST actions)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    return read_json_object(raw, request.headers.get("content-type"))
