"""HTTP endpoints of the users service (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from services.users import schemas, service
from stockmanager.errors import ValidationFailed
from stockmanager.http import json_object, json_response
from stockmanager.service_app import AnyCaller, Runtime

router = APIRouter()

JsonBody = Annotated[dict[str, Any], Depends(json_object)]


@router.post("/internal/auth/verify")
async def verify_credentials(runtime: Runtime, caller: AnyCaller, body: JsonBody) -> Response:
    """Used by the gateway's login. Needs the gateway's signature like every other call."""
    identifier = body.get("username")
    password = body.get("password")
    if not isinstance(identifier, str) or not isinstance(password, str):
        raise ValidationFailed("Usuario y contraseña requeridos")
    if not identifier.strip() or not password:
        raise ValidationFailed("Usuario y contraseña requeridos")
    async with runtime.transaction() as conn:
        user = await service.check_credentials(conn, identifier, password)
    return json_response(schemas.credentials_response(user.user_id, user.username, user.role))
