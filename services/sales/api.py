"""HTTP endpoints of the sales service (thin: parse, call the service, shape the answer).

Bodies and parameters are declared here and validated by the kernel's contract layer
(`ContractRoute`); the response models document the dicts the endpoints send as they are.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from services.sales import schemas, service
from services.sales import schemas_responses as responses
from services.sales.checkout import Outcome, run_sale
from services.sales.idempotency import KEY_HEADER, MAX_KEY_LENGTH, REPLAYED_HEADER, claim_for
from services.sales.repository_checkout import CheckoutConnection
from services.sales.runtime import Runtime
from stockmanager.contracts.validation import ContractRoute, error_responses
from stockmanager.errors import NotFound
from stockmanager.http import json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser, CurrentUser

router = APIRouter(route_class=ContractRoute, tags=["sales"])

DEFAULT_LIMIT = 10
MAX_LIMIT = 100

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        description=(
            f"Optional, 1 to {MAX_KEY_LENGTH} visible ASCII characters (else 400). The same "
            "key with the same request (method, path, JSON body) answers the first response "
            f"again with `{REPLAYED_HEADER}: true` and records nothing; with another request "
            "it is 422. Keys are per user, remembered 24 h, and only successful sales are "
            "remembered."
        ),
    ),
]

_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The sale was recorded (or replayed for a repeated Idempotency-Key).",
        "headers": {
            REPLAYED_HEADER: {
                "description": "`true` when this is the stored answer of an earlier request.",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    }
}
_SALE_DESCRIPTION = (
    "One transaction: stock decrements (never below 0), the sale, its lines and its events; "
    "any refusal records nothing. Checks in order: the body (400), unknown products (400), "
    "disabled products (400, all of them), stock (400 `Stock insuficiente` with `product`, "
    "`requested`, `available`)."
)
_SCOPE = "A vendedor sees only their own sales; admins and root see all."


def _valid_id(sale_id: int) -> bool:
    """Ids beyond bigint cannot exist (the gateway already limits them to 18 digits)."""
    return 1 <= sale_id <= schemas.MAX_ID


@router.post(
    "/api/sales",
    status_code=201,
    response_model=responses.BarcodeSaleCreated,
    responses={**_CREATED, **error_responses(400, 404, 422, 503)},
    summary="Sell one product by barcode",
    description=_SALE_DESCRIPTION + " An unknown barcode is 404 `Producto no encontrado`.",
)
async def create_sale_by_barcode(
    runtime: Runtime,
    caller: CurrentUser,
    request: Request,
    order: schemas.BarcodeSaleRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # The body as the client sent it (already decoded by ContractRoute) is what a key's
    # request is compared by.
    claim = claim_for(request, caller, await request.json(), idempotency_key)
    barcode_order = order.order()

    async def record(conn: CheckoutConnection) -> Outcome:
        sale = await service.record_barcode_sale(conn, caller, barcode_order)
        return Outcome(201, responses.barcode_sale_created(sale), sale.id)

    return await run_sale(runtime, claim, record)


@router.post(
    "/api/sales/bulk",
    status_code=201,
    response_model=responses.BulkSaleCreated,
    responses={**_CREATED, **error_responses(400, 422, 503)},
    summary="Sell several products",
    description=_SALE_DESCRIPTION,
)
async def create_bulk_sale(
    runtime: Runtime,
    caller: CurrentUser,
    request: Request,
    order: schemas.BulkSaleRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    claim = claim_for(request, caller, await request.json(), idempotency_key)
    sale_order = order.order()

    async def record(conn: CheckoutConnection) -> Outcome:
        sale = await service.record_bulk_sale(conn, caller, sale_order)
        return Outcome(201, responses.bulk_sale_created(sale), sale.id)

    return await run_sale(runtime, claim, record)


def _text_filter(description: str) -> Any:
    return Query(description=f"{description} Trimmed, at most 100 characters used; empty: absent.")


@router.get(
    "/api/sales",
    response_model=responses.SalePage,
    responses=error_responses(400),
    summary="Sales history",
    description=f"{_SCOPE} Newest first. A `from`/`to` that is not a date or a timestamp is "
    "400 `Fecha inválida: use YYYY-MM-DD`; a bad `page` or `limit` falls back to its default.",
)
async def list_sales(
    runtime: Runtime,
    caller: CurrentUser,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="Earliest sale: a business-time-zone date `YYYY-MM-DD` (from the "
            "start of that day) or an ISO 8601 timestamp (inclusive; without an offset it is "
            "read in the business time zone). Empty: absent.",
            examples=["2026-11-01"],
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            description="Latest sale: a date `YYYY-MM-DD` (up to the end of that day) or an "
            "ISO 8601 timestamp (inclusive). Empty: absent.",
            examples=["2026-11-30"],
        ),
    ] = None,
    product: Annotated[
        str | None,
        _text_filter(
            "Sales with a line whose product name at the time of the sale contains this text "
            "(case-insensitive)."
        ),
    ] = None,
    vendedor: Annotated[
        str | None,
        _text_filter(
            "Sales whose seller's username at the time of the sale, or current username or "
            "e-mail, contains this text (case-insensitive)."
        ),
    ] = None,
    page: Annotated[
        str | None, Query(description="Page number, from 1 (default 1; invalid: 1).")
    ] = None,
    limit: Annotated[
        str | None,
        Query(description="Sales per page, clamped to 1-100 (default 10; invalid: 10)."),
    ] = None,
) -> Response:
    paging = parse_page(page, limit, default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT)
    tz = runtime.settings.tz
    filters = schemas.parse_filters(from_, to, product, vendedor, tz)
    async with runtime.db.connect() as conn:
        sales, total = await service.list_sales(
            conn, caller, filters, offset=paging.offset, limit=paging.limit
        )
    return json_response(
        paging.envelope([responses.sale_summary(sale, tz) for sale in sales], total)
    )


@router.get(
    "/api/sales/{sale_id}",
    response_model=responses.SaleDetail,
    responses=error_responses(400, 404),
    summary="One sale",
    description=f"{_SCOPE} Another seller's sale is 404 `Sale not found`, as an unknown id.",
)
async def get_sale(runtime: Runtime, caller: CurrentUser, sale_id: int) -> Response:
    sale = None
    if _valid_id(sale_id):
        async with runtime.db.connect() as conn:
            sale = await service.get_sale(conn, caller, sale_id)
    if sale is None:
        raise NotFound("Sale not found")
    return json_response(responses.sale_detail(sale, runtime.settings.tz))


@router.get(
    "/api/sales/{sale_id}/edit",
    response_model=responses.SaleEditView,
    responses=error_responses(400, 403, 404),
    summary="A sale as the edit form shows it",
)
async def get_sale_for_edit(runtime: Runtime, caller: AdminUser, sale_id: int) -> Response:
    if not _valid_id(sale_id):
        raise NotFound("Venta no encontrada")
    async with runtime.db.connect() as conn:
        sale = await service.get_sale_for_edit(conn, sale_id)
    return json_response(responses.sale_edit_view(sale, runtime.settings.tz))


@router.put(
    "/api/sales/{sale_id}",
    response_model=responses.SaleUpdated,
    responses=error_responses(400, 403, 404),
    summary="Edit a sale",
    description="Replaces the sale's lines (stock moves by the difference, at the prices of "
    "the sale) and optionally its seller (an active user) and payment method. Lines checks as "
    "for a new sale.",
)
async def edit_sale(
    runtime: Runtime, caller: AdminUser, sale_id: int, changes: schemas.SaleEditRequest
) -> Response:
    if not _valid_id(sale_id):
        raise NotFound("Venta no encontrada")
    async with runtime.transaction() as conn:
        await service.edit_sale(conn, caller, sale_id, changes.edit())
    return json_response(responses.SALE_UPDATED)
