"""HTTP endpoints for accounts: users, registration, seller suggestions, applications, and the
gateway's credential check (thin: the request models validate, the service decides, the
response models document the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from services.users import applications, login, registration, repository, schemas, service
from services.users.runtime import Runtime
from services.users.schemas_requests import (
    CredentialsCheck,
    NewUserRequest,
    RegistrationRequest,
    UserChangesRequest,
)
from stockmanager.contracts.fields import BIGINT_MAX
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.http import json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser, AnyCaller, CurrentUser

router = APIRouter(route_class=ContractRoute)

UserId = Annotated[int, Path(description="The account's id.", le=BIGINT_MAX)]
PageParam = Annotated[
    str | None, Query(description="Page number, from 1 (default 1; invalid means 1).")
]
LimitParam = Annotated[
    str | None,
    Query(description="Rows per page, clamped to [1, 100] (default 10; invalid means 10)."),
]


@router.post(
    "/internal/auth/verify",
    response_model=schemas.Credentials,
    responses=error_responses(400, 401, 403),
    summary="Check a username (or e-mail) and password",
    description="Used by the gateway's login. Needs the gateway's signature like every other "
    "call. 401 for a wrong password or unknown account; 403 only after a correct password, "
    "for a disabled or pending account.",
)
async def verify_credentials(
    runtime: Runtime, caller: AnyCaller, body: CredentialsCheck
) -> Response:
    # No connection is held while Argon2 runs (it is slow on purpose).
    async with runtime.db.connect() as conn:
        row = await repository.find_by_login(conn, body.username)
    hashing = runtime.resources.hashing
    user = await login.authenticate(hashing, row, body.password)
    assert row is not None  # authenticate refused an unknown user
    new_hash = await login.upgraded_hash(hashing, row, body.password)
    if new_hash is not None:
        # Upstream hashes become Argon2id; compare-and-set, so a concurrent password change
        # is never overwritten with the old password.
        async with runtime.transaction() as conn:
            await repository.replace_password_hash(
                conn, user.user_id, old_hash=row.password_hash, new_hash=new_hash
            )
    return json_response(schemas.credentials_response(user.user_id, user.username, user.role))


# --- users ------------------------------------------------------------------------------------


@router.get(
    "/api/users",
    response_model=schemas.UserPage,
    responses=error_responses(400),
    summary="List accounts",
    description="Newest first (`created_at DESC, id DESC`).",
)
async def list_users(
    runtime: Runtime,
    caller: AdminUser,
    search: Annotated[
        str | None,
        Query(
            description="Username or e-mail contains it (case-insensitive; `%` and `_` are "
            "literal)."
        ),
    ] = None,
    status: Annotated[
        str | None,
        Query(
            description="`1`/`active`/`activo` or `0`/`inactive`/`inactivo`; anything else "
            "means all."
        ),
    ] = None,
    page: PageParam = None,
    limit: LimitParam = None,
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


@router.post(
    "/api/users",
    status_code=201,
    response_model=schemas.UserCreated,
    responses=error_responses(400, 403, 409),
    summary="Create an active account",
    description="Only root may create a root account, and only while none exists (409).",
)
async def create_user(runtime: Runtime, caller: AdminUser, body: NewUserRequest) -> Response:
    new = body.new_user()
    # Refusals first (root rules, name or e-mail taken): they cost no Argon2. The transaction
    # checks again, and the unique indexes settle a race.
    async with runtime.db.connect() as conn:
        await service.refuse_new_user(conn, caller, new)
    password_hash = await runtime.resources.hashing.hash(new.password)
    async with runtime.transaction() as conn:
        user = await service.create_user(conn, caller, new, password_hash)
    # `id` is an addition to upstream's body (it returned no id at all).
    return json_response(schemas.message(schemas.USER_CREATED, id=user.id), status_code=201)


@router.get(
    "/api/users/{user_id}",
    response_model=schemas.User,
    responses=error_responses(400, 404),
    summary="One account",
)
async def get_user(runtime: Runtime, caller: AdminUser, user_id: UserId) -> Response:
    async with runtime.db.connect() as conn:
        return json_response(await service.get_user(conn, user_id, runtime.settings.tz))


@router.put(
    "/api/users/{user_id}",
    response_model=schemas.Message,
    responses=error_responses(400, 403, 404, 409),
    summary="Change an account",
    description="Only the fields sent change; a non-empty password is always a change. Only "
    "root may touch root's account or grant root; nobody may disable themselves. A new "
    "password or status 0 ends the account's sessions.",
)
async def update_user(
    runtime: Runtime, caller: AdminUser, user_id: UserId, body: UserChangesRequest
) -> Response:
    changes = body.changes()
    password_hash = (
        await runtime.resources.hashing.hash(changes.password)
        if changes.password is not None
        else None
    )
    async with runtime.transaction() as conn:
        changed = await service.update_user(conn, caller, user_id, changes, password_hash)
    return json_response(schemas.message(schemas.USER_UPDATED if changed else schemas.NO_CHANGES))


@router.delete(
    "/api/users/{user_id}",
    response_model=schemas.Message,
    responses=error_responses(400, 403, 404),
    summary="Disable an account (soft delete)",
    description="Sets status 0 and ends the account's sessions. Idempotent.",
)
async def disable_user(runtime: Runtime, caller: AdminUser, user_id: UserId) -> Response:
    async with runtime.transaction() as conn:
        await service.disable_user(conn, caller, user_id)
    return json_response(schemas.message(schemas.USER_DISABLED))


# --- registration and suggestions -------------------------------------------------------------


@router.post(
    "/api/register",
    status_code=201,
    response_model=schemas.Success,
    responses=error_responses(400, 409),
    summary="Apply for a seller account",
    description="Public. The account is created disabled with a pending application; an admin "
    "approves it under /api/applications.",
)
async def register(runtime: Runtime, caller: AnyCaller, body: RegistrationRequest) -> Response:
    new = body.new_user()
    # A taken name or e-mail is refused before Argon2 runs; the transaction checks again.
    async with runtime.db.connect() as conn:
        await registration.refuse_taken(conn, new)
    password_hash = await runtime.resources.hashing.hash(new.password)
    async with runtime.transaction() as conn:
        await registration.register(conn, caller, new, password_hash)
    return json_response(schemas.success(schemas.REGISTERED), status_code=201)


@router.get(
    "/api/suggest/vendors",
    response_model=schemas.VendorSuggestions,
    responses=error_responses(400),
    summary="Suggest sellers by name or e-mail",
)
async def suggest_vendors(
    runtime: Runtime,
    caller: CurrentUser,
    q: Annotated[str | None, Query(description="Text to look for; empty gives no rows.")] = None,
) -> Response:
    term = (q or "").strip()
    if not term:
        return json_response({"data": []})
    async with runtime.db.connect() as conn:
        return json_response({"data": await service.suggest_vendors(conn, term)})


# --- applications -----------------------------------------------------------------------------


@router.get(
    "/api/applications",
    response_model=schemas.ApplicationPage,
    responses=error_responses(400),
    summary="Pending registrations",
)
async def list_applications(
    runtime: Runtime, caller: AdminUser, page: PageParam = None, limit: LimitParam = None
) -> Response:
    paging = parse_page(page, limit, default_limit=10, max_limit=100)
    async with runtime.db.connect() as conn:
        return json_response(await applications.list_pending(conn, paging, runtime.settings.tz))


@router.post(
    "/api/applications/{user_id}/approve",
    response_model=schemas.Message,
    responses=error_responses(400, 404, 409),
    summary="Approve a pending registration",
    description="Activates the account. Only a pending application can be decided (409).",
)
async def approve_application(runtime: Runtime, caller: AdminUser, user_id: UserId) -> Response:
    async with runtime.transaction() as conn:
        await applications.decide(conn, caller, user_id, approve=True)
    return json_response(schemas.message(schemas.APPLICATION_APPROVED))


@router.post(
    "/api/applications/{user_id}/reject",
    response_model=schemas.Message,
    responses=error_responses(400, 404, 409),
    summary="Reject a pending registration",
    description="The account stays disabled. Only a pending application can be decided (409).",
)
async def reject_application(runtime: Runtime, caller: AdminUser, user_id: UserId) -> Response:
    async with runtime.transaction() as conn:
        await applications.decide(conn, caller, user_id, approve=False)
    return json_response(schemas.message(schemas.APPLICATION_REJECTED))
