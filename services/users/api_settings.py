"""HTTP endpoints under `/api/settings/...`: the caller's own profile and password, and the
whitelisted business settings (`actual`). The gateway maps upstream's `/api/api/settings/...`
aliases onto these paths."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from services.users import business_settings, profile, repository, schemas, service
from services.users.runtime import Runtime
from stockmanager.http import json_object, json_response
from stockmanager.service_app import AdminUser, CurrentUser, RootUser

router = APIRouter()

JsonBody = Annotated[dict[str, Any], Depends(json_object)]


@router.put("/api/settings/profile")
async def update_profile(runtime: Runtime, caller: CurrentUser, body: JsonBody) -> Response:
    email = profile.parse_profile(body)
    async with runtime.transaction() as conn:
        await profile.update_profile(conn, caller, email)
    return json_response(schemas.success(profile.PROFILE_UPDATED))


@router.put("/api/settings/password")
async def change_password(runtime: Runtime, caller: CurrentUser, body: JsonBody) -> Response:
    change = profile.parse_password_change(body)
    assert caller.user_id is not None
    settings = runtime.settings
    await profile.refuse_if_throttled(runtime.redis, caller.user_id, settings)
    # No connection is held while Argon2 runs; the update below is a compare-and-set.
    async with runtime.db.connect() as conn:
        old_hash = await repository.get_password_hash(conn, caller.user_id)
    if old_hash is None:
        raise service.UserNotFound()
    if not await profile.verify_current(old_hash, change.current):
        await profile.record_failure(runtime.redis, caller.user_id, settings)
        raise profile.WrongCurrentPassword()
    new_hash = await service.hash_password(change.new)
    async with runtime.transaction() as conn:
        await profile.store_new_password(conn, caller, old_hash=old_hash, new_hash=new_hash)
    await profile.clear_failures(runtime.redis, caller.user_id)
    return json_response(schemas.success(profile.PASSWORD_UPDATED))


@router.get("/api/settings/actual")
async def all_settings(runtime: Runtime, caller: AdminUser) -> Response:
    async with runtime.db.connect() as conn:
        values = await business_settings.all_settings(conn, runtime.settings.timezone)
    return json_response(values)


@router.get("/api/settings/actual/{key}")
async def get_setting(runtime: Runtime, caller: AdminUser, key: str) -> Response:
    async with runtime.db.connect() as conn:
        value = await business_settings.get_setting(conn, key, runtime.settings.timezone)
    return json_response(value)


@router.put("/api/settings/actual/{key}")
async def put_setting(runtime: Runtime, caller: RootUser, key: str, body: JsonBody) -> Response:
    async with runtime.transaction() as conn:
        data = await business_settings.put_setting(
            conn, key, body, caller, runtime.settings.timezone
        )
    return json_response(schemas.setting_updated(key, data))
