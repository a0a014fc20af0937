"""HTTP helpers shared by services: fast JSON responses (bodies are read by
`stockmanager.contracts.validation`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


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
