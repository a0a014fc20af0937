"""HTTP endpoints of the three-step password reset (public; see password_reset.py)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from services.users import password_reset, schemas, validation
from services.users.mailer import reset_code_message
from services.users.runtime import Runtime
from services.users.schemas_requests import (
    NEW_PASSWORD_TOO_SHORT,
    CodeAttemptRequest,
    ResetCodeRequest,
    ResetPasswordRequest,
)
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.errors import ValidationFailed
from stockmanager.http import json_response
from stockmanager.service_app import AnyCaller

router = APIRouter(route_class=ContractRoute)


@router.post(
    "/api/users/reset-password",
    response_model=schemas.Message,
    responses=error_responses(400),
    summary="Reset step 1: mail a code",
    description="Public. Always the same answer, whether or not the address belongs to an "
    "active account (only then is a 6-digit code mailed; at most a few per account per 15 "
    "minutes). A new code replaces the previous one.",
)
async def request_reset(runtime: Runtime, caller: AnyCaller, body: ResetCodeRequest) -> Response:
    settings = runtime.settings
    async with runtime.transaction() as conn:
        mail = await password_reset.request_code(conn, caller, body.email, settings)
    # Committed: now (and only now) the code may leave, in the background, so the answer takes
    # the same time whether or not the address belongs to an account.
    if mail is not None:
        runtime.resources.mail.dispatch(
            reset_code_message(
                settings.smtp_from, mail.to, mail.code, settings.reset_code_ttl_seconds // 60
            )
        )
    return json_response(schemas.message(password_reset.CODE_SENT))


@router.post(
    "/api/users/validate-code",
    response_model=schemas.Message,
    responses=error_responses(400, 401),
    summary="Reset step 2: check the code",
    description="Public. Codes expire after 15 minutes; every wrong code counts, and after 5 "
    "the code is burned (401 from then on).",
)
async def validate_code(runtime: Runtime, caller: AnyCaller, body: CodeAttemptRequest) -> Response:
    async with runtime.transaction() as conn:
        valid = await password_reset.validate_code(conn, body.attempt(), runtime.settings)
    if not valid:  # raised after commit: the wrong try is remembered
        raise password_reset.InvalidCode()
    return json_response(schemas.message(password_reset.CODE_VERIFIED))


@router.post(
    "/api/users/reset-password/change-password",
    response_model=schemas.Message,
    responses=error_responses(400, 401),
    summary="Reset step 3: set the new password",
    description="Public. Needs the code verified in step 2. Ends every session of the account.",
)
async def change_password(
    runtime: Runtime, caller: AnyCaller, body: ResetPasswordRequest
) -> Response:
    attempt = body.attempt()
    settings = runtime.settings
    async with runtime.transaction() as conn:
        verified = await password_reset.check_verified(conn, attempt, settings)
    if not verified:
        raise password_reset.CodeNotVerified()
    if len(body.new_password) < validation.PASSWORD_MIN:
        raise ValidationFailed(NEW_PASSWORD_TOO_SHORT)
    password_hash = await runtime.resources.hashing.hash(body.new_password)
    async with runtime.transaction() as conn:
        done = await password_reset.complete_reset(conn, caller, attempt, password_hash, settings)
    if not done:
        raise password_reset.CodeNotVerified()
    return json_response(schemas.message(password_reset.PASSWORD_RESET_DONE))
