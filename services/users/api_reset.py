"""HTTP endpoints of the three-step password reset (public; see password_reset.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from services.users import password_reset, schemas, service, validation
from services.users.mailer import reset_code_message
from services.users.runtime import Runtime
from stockmanager.errors import ValidationFailed
from stockmanager.http import json_object, json_response
from stockmanager.service_app import AnyCaller

router = APIRouter()

JsonBody = Annotated[dict[str, Any], Depends(json_object)]


@router.post("/api/users/reset-password")
async def request_reset(runtime: Runtime, caller: AnyCaller, body: JsonBody) -> Response:
    email = password_reset.parse_request(body)
    settings = runtime.settings
    async with runtime.transaction() as conn:
        mail = await password_reset.request_code(conn, caller, email, settings)
    # Committed: now (and only now) the code may leave, in the background, so the answer takes
    # the same time whether or not the address belongs to an account.
    if mail is not None:
        runtime.resources.mail.dispatch(
            reset_code_message(
                settings.smtp_from, mail.to, mail.code, settings.reset_code_ttl_seconds // 60
            )
        )
    return json_response(schemas.message(password_reset.CODE_SENT))


@router.post("/api/users/validate-code")
async def validate_code(runtime: Runtime, caller: AnyCaller, body: JsonBody) -> Response:
    attempt = password_reset.parse_attempt(body)
    async with runtime.transaction() as conn:
        valid = await password_reset.validate_code(conn, attempt, runtime.settings)
    if not valid:  # raised after commit: the wrong try is remembered
        raise password_reset.InvalidCode()
    return json_response(schemas.message(password_reset.CODE_VERIFIED))


@router.post("/api/users/reset-password/change-password")
async def change_password(runtime: Runtime, caller: AnyCaller, body: JsonBody) -> Response:
    attempt = password_reset.parse_attempt(body)
    new_password = body.get("new_password")
    if not isinstance(new_password, str) or not new_password:
        raise ValidationFailed("Faltan campos requeridos")
    settings = runtime.settings
    async with runtime.transaction() as conn:
        verified = await password_reset.check_verified(conn, attempt, settings)
    if not verified:
        raise password_reset.CodeNotVerified()
    if len(new_password) < validation.PASSWORD_MIN:
        raise ValidationFailed("La contraseña debe tener al menos 6 caracteres")
    if len(new_password) > validation.PASSWORD_MAX:
        raise ValidationFailed(
            f"La contraseña debe tener como máximo {validation.PASSWORD_MAX} caracteres"
        )
    password_hash = await service.hash_password(new_password)
    async with runtime.transaction() as conn:
        done = await password_reset.complete_reset(conn, caller, attempt, password_hash, settings)
    if not done:
        raise password_reset.CodeNotVerified()
    return json_response(schemas.message(password_reset.PASSWORD_RESET_DONE))
