"""HTTP endpoints of the sales service (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from services.sales import schemas, service
from services.sales.checkout import Outcome, run_sale
from services.sales.idempotency import claim_for
from services.sales.repository_checkout import CheckoutConnection
from stockmanager.errors import NotFound
from stockmanager.http import json_object, json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser, CurrentUser, Runtime

router = APIRouter()

JsonBody = Annotated[dict[str, Any], Depends(json_object)]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def _valid_id(sale_id: int) -> bool:
    """Ids beyond bigint cannot exist (the gateway already limits them to 18 digits)."""
    return 1 <= sale_id <= schemas.MAX_ID


@router.post("/api/sales")
async def create_sale_by_barcode(
    runtime: Runtime, caller: CurrentUser, request: Request, body: JsonBody
) -> Response:
    order = schemas.parse_barcode_sale(body)
    claim = claim_for(request, caller, body)

    async def record(conn: CheckoutConnection) -> Outcome:
        recorded = await service.record_barcode_sale(conn, caller, order)
        sale = recorded.sale
        return Outcome(201, schemas.barcode_sale_created(sale), sale.id, recorded.events)

    return await run_sale(runtime, claim, record)


@router.post("/api/sales/bulk")
async def create_bulk_sale(
    runtime: Runtime, caller: CurrentUser, request: Request, body: JsonBody
) -> Response:
    order = schemas.parse_bulk_sale(body, max_lines=runtime.settings.max_sale_lines)
    claim = claim_for(request, caller, body)

    async def record(conn: CheckoutConnection) -> Outcome:
        recorded = await service.record_bulk_sale(conn, caller, order)
        sale = recorded.sale
        return Outcome(201, schemas.bulk_sale_created(sale), sale.id, recorded.events)

    return await run_sale(runtime, claim, record)


@router.get("/api/sales")
async def list_sales(runtime: Runtime, caller: CurrentUser, request: Request) -> Response:
    params = request.query_params
    page = parse_page(
        params.get("page"), params.get("limit"), default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT
    )
    filters = schemas.parse_filters(dict(params), runtime.settings.tz)
    async with runtime.db.connect() as conn:
        sales, total = await service.list_sales(
            conn, caller, filters, offset=page.offset, limit=page.limit
        )
    tz = runtime.settings.tz
    return json_response(page.envelope([schemas.sale_summary(sale, tz) for sale in sales], total))


@router.get("/api/sales/{sale_id}")
async def get_sale(runtime: Runtime, caller: CurrentUser, sale_id: int) -> Response:
    sale = None
    if _valid_id(sale_id):
        async with runtime.db.connect() as conn:
            sale = await service.get_sale(conn, caller, sale_id)
    if sale is None:
        raise NotFound("Sale not found")
    return json_response(schemas.sale_detail(sale, runtime.settings.tz))


@router.get("/api/sales/{sale_id}/edit")
async def get_sale_for_edit(runtime: Runtime, caller: AdminUser, sale_id: int) -> Response:
    if not _valid_id(sale_id):
        raise NotFound("Venta no encontrada")
    async with runtime.db.connect() as conn:
        sale = await service.get_sale_for_edit(conn, sale_id)
    return json_response(schemas.sale_edit_view(sale, runtime.settings.tz))


@router.put("/api/sales/{sale_id}")
async def edit_sale(runtime: Runtime, caller: AdminUser, sale_id: int, body: JsonBody) -> Response:
    edit = schemas.parse_sale_edit(body, max_lines=runtime.settings.max_sale_lines)
    if not _valid_id(sale_id):
        raise NotFound("Venta no encontrada")
    async with runtime.transaction() as conn:
        await service.edit_sale(conn, caller, sale_id, edit)
    return json_response(schemas.SALE_UPDATED)
