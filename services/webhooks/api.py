"""HTTP endpoints of the webhooks service (admin and root): subscriptions, secrets, the delivery
log. Thin: parse, call the service, shape the answer (schemas.py documents every body)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from services.webhooks import schemas, service
from services.webhooks.runtime import Runtime, WebhooksRuntime
from services.webhooks.tables import DELIVERY_STATUSES
from stockmanager.contracts.fields import BIGINT_MAX
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.errors import ValidationFailed
from stockmanager.http import json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser

router = APIRouter(prefix="/api/webhooks", route_class=ContractRoute, tags=["webhooks"])

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SIGNING = (
    "Every request is signed as the Standard Webhooks specification says (`webhook-id` = the "
    "event id, `webhook-timestamp`, `webhook-signature`); see docs/webhooks.md."
)

WebhookId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Subscription id")]
DeliveryId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Delivery id")]
PageNumber = Annotated[str | None, Query(description="Page, from 1 (default 1)")]
Limit = Annotated[
    str | None,
    Query(description=f"Page size, clamped to [1, {MAX_LIMIT}] (default {DEFAULT_LIMIT})"),
]
StatusFilter = Annotated[
    str | None,
    Query(
        description="Only deliveries in this status",
        json_schema_extra={"enum": list(DELIVERY_STATUSES)},
    ),
]
TypeFilter = Annotated[
    str | None, Query(max_length=64, description="Only deliveries of this event type")
]
ERRORS = error_responses(400, 403, 404)


def _context(runtime: WebhooksRuntime) -> service.Context:
    return service.Context(runtime.settings, runtime.resources.cipher)


@router.post(
    "",
    status_code=201,
    response_model=schemas.WebhookWithSecret,
    summary="Subscribe a URL to events (admin, root); the answer shows its signing secret once",
    description=f"The URL is resolved and refused if it points at a non-public address. {SIGNING}",
    responses=error_responses(400, 403),
)
async def create(runtime: Runtime, caller: AdminUser, new: schemas.NewWebhook) -> Response:
    async with runtime.transaction() as conn:
        created = await service.create(conn, _context(runtime), caller, new)
    return json_response(created, status_code=201)


@router.get(
    "",
    response_model=schemas.WebhookPage,
    summary="Every subscription (admin, root), oldest first, paginated; secrets never shown",
    responses=error_responses(400, 403),
)
async def list_webhooks(
    runtime: Runtime, caller: AdminUser, page: PageNumber = None, limit: Limit = None
) -> Response:
    paging = parse_page(page, limit, default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT)
    async with runtime.db.connect() as conn:
        return json_response(await service.list_page(conn, paging))


@router.get(
    "/{webhook_id}",
    response_model=schemas.Webhook,
    summary="One subscription (admin, root)",
    responses=ERRORS,
)
async def read(runtime: Runtime, caller: AdminUser, webhook_id: WebhookId) -> Response:
    async with runtime.db.connect() as conn:
        return json_response(await service.get(conn, webhook_id))


@router.put(
    "/{webhook_id}",
    response_model=schemas.Webhook,
    summary="Change a subscription (admin, root); only the fields given change",
    description="`active: true` re-enables a subscription that was disabled automatically.",
    responses=ERRORS,
)
async def update(
    runtime: Runtime, caller: AdminUser, webhook_id: WebhookId, changes: schemas.WebhookChanges
) -> Response:
    async with runtime.transaction() as conn:
        changed = await service.update(conn, _context(runtime), caller, webhook_id, changes)
    runtime.resources.worker.wake()  # re-enabled: its pending deliveries are due
    return json_response(changed)


@router.delete(
    "/{webhook_id}",
    response_model=schemas.Message,
    summary="Delete a subscription and its delivery log (admin, root)",
    responses=ERRORS,
)
async def delete(runtime: Runtime, caller: AdminUser, webhook_id: WebhookId) -> Response:
    async with runtime.transaction() as conn:
        await service.delete(conn, caller, webhook_id)
    return json_response({"message": schemas.MESSAGE_DELETED})


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=schemas.RotatedSecret,
    summary="Replace the signing secret (admin, root); the new one is shown once",
    description=(
        "During the grace period every request carries two signatures (new and previous "
        "secret), so receivers can switch to the new secret at their own pace."
    ),
    responses=ERRORS,
)
async def rotate_secret(
    runtime: Runtime,
    caller: AdminUser,
    webhook_id: WebhookId,
    body: schemas.RotateSecret | None = None,
) -> Response:
    async with runtime.transaction() as conn:
        rotated = await service.rotate_secret(conn, _context(runtime), caller, webhook_id, body)
    return json_response(rotated)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=schemas.DeliveryQueued,
    summary="Send a `webhook.ping` to the subscription (admin, root)",
    description="Queued like any delivery: its outcome is in the delivery log.",
    responses={**ERRORS, **error_responses(409)},
)
async def send_test(runtime: Runtime, caller: AdminUser, webhook_id: WebhookId) -> Response:
    async with runtime.transaction() as conn:
        delivery_id = await service.send_test(conn, _context(runtime), caller, webhook_id)
    runtime.resources.worker.wake()
    return json_response(
        {"message": schemas.MESSAGE_QUEUED, "delivery_id": delivery_id}, status_code=202
    )


@router.get(
    "/{webhook_id}/deliveries",
    response_model=schemas.DeliveryPage,
    summary="The delivery log of a subscription (admin, root), newest first, paginated",
    responses=ERRORS,
)
async def deliveries(
    runtime: Runtime,
    caller: AdminUser,
    webhook_id: WebhookId,
    status: StatusFilter = None,
    event_type: TypeFilter = None,
    page: PageNumber = None,
    limit: Limit = None,
) -> Response:
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailed("status debe ser pending, succeeded o failed", field="status")
    paging = parse_page(page, limit, default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT)
    async with runtime.db.connect() as conn:
        log = await service.deliveries_page(
            conn, webhook_id, paging, status=status, event_type=event_type
        )
    return json_response(log)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=schemas.DeliveryQueued,
    summary="Send one delivery again now, whatever its status (admin, root)",
    description="Same body and `webhook-id` (receivers deduplicate on it); a new retry window.",
    responses=ERRORS,
)
async def redeliver(
    runtime: Runtime, caller: AdminUser, webhook_id: WebhookId, delivery_id: DeliveryId
) -> Response:
    async with runtime.transaction() as conn:
        queued = await service.redeliver(conn, _context(runtime), webhook_id, delivery_id)
    runtime.resources.worker.wake()
    return json_response(
        {"message": schemas.MESSAGE_QUEUED, "delivery_id": queued}, status_code=202
    )
