"""HTTP endpoints of the products service (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from services.products import csvio, importer, repository, schemas, service
from services.products.openfoodfacts import OpenFoodFacts
from services.products.repository import ProductQuery
from services.products.validation import validate_create
from stockmanager.errors import NotFound
from stockmanager.http import json_object, json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser, CurrentUser, Runtime, ServiceRuntime
from stockmanager.timefmt import now_utc

router = APIRouter()

JsonBody = Annotated[dict[str, Any], Depends(json_object)]

ALL_DEFAULT_LIMIT = 50
ACTIVE_DEFAULT_LIMIT = 24
MAX_LIMIT = 250
MOVEMENTS_DEFAULT_LIMIT = 50


@asynccontextmanager
async def reading(runtime: ServiceRuntime) -> AsyncIterator[AsyncConnection]:
    """A connection for reads in autocommit: each read is one statement (one snapshot), so the
    BEGIN/ROLLBACK round trips of a transaction would buy nothing."""
    async with runtime.db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def product_query(request: Request, *, active_only: bool) -> ProductQuery:
    """Upstream's parameters, whitelisted: anything unknown falls back to the default."""
    args = request.query_params
    sort = args.get("sort", "name")
    order = args.get("order", "asc").lower()
    return ProductQuery(
        search=args.get("search", "").strip(),
        view_mode=args.get("view_mode", "all"),
        sort=sort if sort in repository.SORT_COLUMNS else "name",
        order=order if order in ("asc", "desc") else "asc",
        active_only=active_only,
    )


async def _list(
    request: Request, runtime: ServiceRuntime, *, active_only: bool, default_limit: int
) -> Response:
    query = product_query(request, active_only=active_only)
    page = parse_page(
        request.query_params.get("page"),
        request.query_params.get("limit"),
        default_limit=default_limit,
        max_limit=MAX_LIMIT,
    )
    async with reading(runtime) as conn:
        rows, total = await repository.list_page(
            conn, query, limit=page.limit, offset=page.offset, tz=runtime.settings.timezone
        )
    return json_response(page.envelope([schemas.product(row) for row in rows], total))


@router.get("/api/products_all")
async def list_all_products(request: Request, runtime: Runtime, caller: CurrentUser) -> Response:
    return await _list(request, runtime, active_only=False, default_limit=ALL_DEFAULT_LIMIT)


@router.get("/api/products")
async def list_active_products(request: Request, runtime: Runtime, caller: CurrentUser) -> Response:
    return await _list(request, runtime, active_only=True, default_limit=ACTIVE_DEFAULT_LIMIT)


@router.get("/api/items")
async def autocomplete(request: Request, runtime: Runtime, caller: CurrentUser) -> Response:
    term = request.query_params.get("q", "").strip()
    if not term:
        return json_response([])
    async with reading(runtime) as conn:
        rows = await repository.search_items(conn, term)
    return json_response([schemas.item(row) for row in rows])


@router.get("/api/products/export")
async def export_products(request: Request, runtime: Runtime, caller: AdminUser) -> Response:
    query = product_query(request, active_only=False)
    async with reading(runtime) as conn:
        rows = await repository.export_products(conn, query, runtime.settings.timezone)
    tz = runtime.settings.tz
    content = await asyncio.to_thread(csvio.export_csv, rows)
    filename = f"stockly_productos_{now_utc().astimezone(tz):%Y%m%d_%H%M}.csv"
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/api/products/import")
async def import_products(request: Request, runtime: Runtime, caller: AdminUser) -> Response:
    raw = csvio.extract_csv(await request.body(), request.headers.get("content-type"))
    skip_invalid = request.query_params.get("skip_invalid", "").lower() in ("1", "true", "yes")
    parsed = await asyncio.to_thread(
        lambda: csvio.parse_import(csvio.decode(raw), max_rows=runtime.settings.import_max_rows)
    )
    if not skip_invalid:
        importer.reject_invalid(parsed)
    async with runtime.transaction() as conn:
        result = await importer.import_rows(conn, caller, parsed)
    return json_response(result.body())


@router.post("/api/products/update_price_bulk")
async def update_price_bulk(runtime: Runtime, caller: AdminUser, body: JsonBody) -> Response:
    async with runtime.transaction() as conn:
        await service.update_prices(conn, caller, body)
    return json_response({"message": schemas.PRICES_UPDATED})


@router.post("/api/products/stock_update_bulk")
async def stock_update_bulk(runtime: Runtime, caller: AdminUser, body: JsonBody) -> Response:
    async with runtime.transaction() as conn:
        await service.update_stock(conn, caller, body)
    return json_response({"message": schemas.STOCK_UPDATED})


@router.get("/api/products/info/{barcode}")
async def product_info(barcode: str, runtime: Runtime, caller: CurrentUser) -> Response:
    lookup: OpenFoodFacts = runtime.extras["openfoodfacts"]
    return json_response(await lookup.lookup(barcode))


@router.get("/api/products/{product_id}")
async def get_product(product_id: int, runtime: Runtime, caller: CurrentUser) -> Response:
    async with reading(runtime) as conn:
        row = await repository.get_product_display(conn, product_id, runtime.settings.timezone)
    if row is None:
        raise NotFound(schemas.NOT_FOUND)
    return json_response(schemas.product(row))


@router.post("/api/products")
async def create_product(runtime: Runtime, caller: AdminUser, body: JsonBody) -> Response:
    clean = validate_create(body)
    async with runtime.transaction() as conn:
        await service.create_product(conn, caller, clean)
    return json_response({"message": schemas.CREATED}, status_code=201)


@router.put("/api/products/{product_id}")
async def update_product(
    product_id: int, runtime: Runtime, caller: AdminUser, body: JsonBody
) -> Response:
    async with runtime.transaction() as conn:
        await service.update_product(conn, caller, product_id, body)
    return json_response({"message": schemas.UPDATED})


@router.delete("/api/products/{product_id}")
async def disable_product(product_id: int, runtime: Runtime, caller: AdminUser) -> Response:
    async with runtime.transaction() as conn:
        await service.set_status(conn, caller, product_id, 0)
    return json_response({"message": schemas.DISABLED})


@router.post("/api/products/{product_id}/activate")
async def activate_product(product_id: int, runtime: Runtime, caller: AdminUser) -> Response:
    async with runtime.transaction() as conn:
        await service.set_status(conn, caller, product_id, 1)
    return json_response({"message": schemas.ACTIVATED})


@router.get("/api/products/{product_id}/movements")
async def product_movements(
    product_id: int, request: Request, runtime: Runtime, caller: AdminUser
) -> Response:
    page = parse_page(
        request.query_params.get("page"),
        request.query_params.get("limit"),
        default_limit=MOVEMENTS_DEFAULT_LIMIT,
        max_limit=MAX_LIMIT,
    )
    async with reading(runtime) as conn:
        if await repository.get_product(conn, product_id) is None:
            raise NotFound(schemas.NOT_FOUND)
        total = await repository.count_movements(conn, product_id)
        rows = await repository.list_movements(
            conn, product_id, limit=page.limit, offset=page.offset
        )
    tz = runtime.settings.tz
    return json_response(page.envelope([schemas.movement(row, tz) for row in rows], total))
