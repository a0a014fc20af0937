"""HTTP endpoints for accounts: users, registration, seller suggestions, applications, and the
gateway's credential check (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from services.users import applications, login, registration, repository, schemas, service
from services.users.runtime import Runtime
from stockmanager.errors import ValidationFailed
from stockmanager.http import json_object, json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser, AnyCaller, CurrentUser

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
    # No connection is held while Argon2 runs (it is slow on purpose).
    async with runtime.db.connect() as conn:
        row = await repository.find_by_login(conn, identifier)
    user = await login.authenticate(row, password)
    assert row is not None  # authenticate refused an unknown user
    new_hash = await login.upgraded_hash(row, password)
    if new_hash is not None:
        # Upstream hashes become Argon2id; compare-and-set, so a concurrent password change
        # is never overwritten with the old password.
        async with runtime.transaction() as conn:
            await repository.replace_password_hash(
                conn, user.user_id, old_hash=row.password_hash, new_hash=new_hash
            )
    return json_response(schemas.credentials_response(user.user_id, user.username, user.role))


# --- users ------------------------------------------------------------------------------------


@router.get("/api/users")
async def list_users(
    runtime: Runtime,
    caller: AdminUser,
    search: str | None = None,
    status: str | None = None,
    page: str | None = None,
    limit: str | None = None,
) -> Response:
    paging = parse_page(page, limit, default_limit=10, max_limit=100)
    term = search.strip() if search else None
    async with runtime.db.connect() as conn:
        body = await service.list_users(
            conn,
            paging,
            search=term or None,
            status=service.parse_status_filter(status),
            tz=runtime.settings.tz,
        )
    return json_response(body)


@router.post("/api/users")
async def create_user(runtime: Runtime, caller: AdminUser, body: JsonBody) -> Response:
    new = service.parse_new_user(body)
    password_hash = await service.hash_password(new.password)
    async with runtime.transaction() as conn:
        user = await service.create_user(conn, caller, new, password_hash)
    # `id` is an addition to upstream's body (it returned no id at all).
    return json_response(schemas.message(schemas.USER_CREATED, id=user.id), status_code=201)


@router.get("/api/users/{user_id}")
async def get_user(runtime: Runtime, caller: AdminUser, user_id: int) -> Response:
    async with runtime.db.connect() as conn:
        return json_response(await service.get_user(conn, user_id, runtime.settings.tz))


@router.put("/api/users/{user_id}")
async def update_user(
    runtime: Runtime, caller: AdminUser, user_id: int, body: JsonBody
) -> Response:
    changes = service.parse_user_changes(body)
    password_hash = (
        await service.hash_password(changes.password) if changes.password is not None else None
    )
    async with runtime.transaction() as conn:
        changed = await service.update_user(conn, caller, user_id, changes, password_hash)
    return json_response(schemas.message(schemas.USER_UPDATED if changed else schemas.NO_CHANGES))


@router.delete("/api/users/{user_id}")
async def disable_user(runtime: Runtime, caller: AdminUser, user_id: int) -> Response:
    async with runtime.transaction() as conn:
        await service.disable_user(conn, caller, user_id)
    return json_response(schemas.message(schemas.USER_DISABLED))


# --- registration and suggestions -------------------------------------------------------------


@router.post("/api/register")
async def register(runtime: Runtime, caller: AnyCaller, body: JsonBody) -> Response:
    new = registration.parse_registration(body)
    password_hash = await service.hash_password(new.password)
    async with runtime.transaction() as conn:
        await registration.register(conn, caller, new, password_hash)
    return json_response(schemas.success(schemas.REGISTERED), status_code=201)


@router.get("/api/suggest/vendors")
async def suggest_vendors(runtime: Runtime, caller: CurrentUser, q: str | None = None) -> Response:
    term = (q or "").strip()
    if not term:
        return json_response({"data": []})
    async with runtime.db.connect() as conn:
        return json_response({"data": await service.suggest_vendors(conn, term)})


# --- applications -----------------------------------------------------------------------------


@router.get("/api/applications")
async def list_applications(
    runtime: Runtime, caller: AdminUser, page: str | None = None, limit: str | None = None
) -> Response:
    paging = parse_page(page, limit, default_limit=10, max_limit=100)
    async with runtime.db.connect() as conn:
        return json_response(await applications.list_pending(conn, paging, runtime.settings.tz))


@router.post("/api/applications/{user_id}/approve")
async def approve_application(runtime: Runtime, caller: AdminUser, user_id: int) -> Response:
    async with runtime.transaction() as conn:
        await applications.decide(conn, caller, user_id, approve=True)
    return json_response(schemas.message(schemas.APPLICATION_APPROVED))


@router.post("/api/applications/{user_id}/reject")
async def reject_application(runtime: Runtime, caller: AdminUser, user_id: int) -> Response:
    async with runtime.transaction() as conn:
        await applications.decide(conn, caller, user_id, approve=False)
    return json_response(schemas.message(schemas.APPLICATION_REJECTED))
