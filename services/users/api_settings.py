"""HTTP endpoints under `/api/settings/...`: the caller's own profile and password, and the
whitelisted business settings (`actual`). The gateway maps upstream's `/api/api/settings/...`
aliases onto these paths."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from services.users import business_settings, profile, repository, schemas, service
from services.users.runtime import Runtime
from services.users.schemas_requests import PasswordChangeRequest, ProfileRequest, SettingWrite
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.http import json_response
from stockmanager.service_app import AdminUser, CurrentUser, RootUser

router = APIRouter(route_class=ContractRoute)

SETTING_KEYS = ", ".join(f"`{spec.key}`" for spec in business_settings.SPECS)
SettingKey = Annotated[
    str,
    Path(
        description=f"A dotted key ({SETTING_KEYS}); reading also takes a first segment "
        "(`business`, `inventory`, `sales`) for its whole group.",
        examples=["business.name"],
    ),
]


@router.put(
    "/api/settings/profile",
    response_model=schemas.Success,
    responses=error_responses(400, 404, 409),
    summary="Change your own e-mail",
)
async def update_profile(runtime: Runtime, caller: CurrentUser, body: ProfileRequest) -> Response:
    async with runtime.transaction() as conn:
        await profile.update_profile(conn, caller, body.email)
    return json_response(schemas.success(profile.PROFILE_UPDATED))


@router.put(
    "/api/settings/password",
    response_model=schemas.Success,
    responses=error_responses(400, 401, 404, 409, 429),
    summary="Change your own password",
    description="Needs the current password (401 if wrong; repeated wrong tries are refused "
    "with 429 for a while). Ends every session of the account, this one included.",
)
async def change_password(
    runtime: Runtime, caller: CurrentUser, body: PasswordChangeRequest
) -> Response:
    assert caller.user_id is not None
    settings = runtime.settings
    await profile.refuse_if_throttled(runtime.redis, caller.user_id, settings)
    # No connection is held while Argon2 runs; the update below is a compare-and-set.
    async with runtime.db.connect() as conn:
        old_hash = await repository.get_password_hash(conn, caller.user_id)
    if old_hash is None:
        raise service.UserNotFound()
    hashing = runtime.resources.hashing
    if not await profile.verify_current(hashing, old_hash, body.current_password):
        await profile.record_failure(runtime.redis, caller.user_id, settings)
        raise profile.WrongCurrentPassword()
    new_hash = await hashing.hash(body.new_password)
    async with runtime.transaction() as conn:
        await profile.store_new_password(conn, caller, old_hash=old_hash, new_hash=new_hash)
    await profile.clear_failures(runtime.redis, caller.user_id)
    return json_response(schemas.success(profile.PASSWORD_UPDATED))


@router.get(
    "/api/settings/actual",
    response_model=schemas.AllSettings,
    responses=error_responses(400),
    summary="All business settings",
)
async def all_settings(runtime: Runtime, caller: AdminUser) -> Response:
    async with runtime.db.connect() as conn:
        values = await business_settings.all_settings(conn, runtime.settings.timezone)
    return json_response(values)


@router.get(
    "/api/settings/actual/{key}",
    response_model=schemas.OneSetting,
    responses=error_responses(400, 404),
    summary="One business setting, or one group",
)
async def get_setting(runtime: Runtime, caller: AdminUser, key: SettingKey) -> Response:
    async with runtime.db.connect() as conn:
        value = await business_settings.get_setting(conn, key, runtime.settings.timezone)
    return json_response(value)


@router.put(
    "/api/settings/actual/{key}",
    response_model=schemas.SettingUpdated,
    responses=error_responses(400, 404),
    summary="Change one business setting (root only)",
    description="Only whitelisted leaf keys exist (404 otherwise, before the value is looked "
    "at); `business.timezone` is read-only.\n\n" + business_settings.value_documentation(),
)
async def put_setting(
    runtime: Runtime, caller: RootUser, key: SettingKey, body: SettingWrite
) -> Response:
    async with runtime.transaction() as conn:
        data = await business_settings.put_setting(
            conn, key, body.value, caller, runtime.settings.timezone
        )
    return json_response(schemas.setting_updated(key, data))
