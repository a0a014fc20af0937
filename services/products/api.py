"""HTTP endpoints of the products service (thin: parse, call the service, shape the answer).

Bodies are the request models of `schemas.py`, validated by the kernel's `ContractRoute`;
every query parameter an endpoint reads is declared (so it is in the OpenAPI document) and
keeps upstream's lenient rule: an unusable value falls back to the default, never fails.
Handlers answer with `json_response(...)`; `response_model=` documents that body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from services.products import csvio, importer, repository, schemas, service
from services.products.repository import ProductQuery
from services.products.runtime import ProductsRuntime, Runtime
from stockmanager.contracts.fields import BIGINT_MAX
from stockmanager.contracts.validation import ContractRoute, ErrorBody, error_responses
from stockmanager.errors import NotFound
from stockmanager.http import json_response
from stockmanager.pagination import parse_page
from stockmanager.service_app import AdminUser, CurrentUser
from stockmanager.timefmt import now_utc

router = APIRouter(route_class=ContractRoute, tags=["products"])

ALL_DEFAULT_LIMIT = 50
ACTIVE_DEFAULT_LIMIT = 24
MAX_LIMIT = 250
MOVEMENTS_DEFAULT_LIMIT = 50

# The gateway routes at most 18 digits; the bound keeps a direct call's id within BIGINT.
ProductId = Annotated[int, Path(le=BIGINT_MAX, description="Product id")]
Search = Annotated[
    str | None,
    Query(
        description="Case-insensitive substring (trimmed): name or barcode, plus the description"
        " in products_all and the export"
    ),
]
ViewMode = Annotated[
    str | None,
    Query(
        description="all (default), in_stock, low_stock (not in /api/products), out_of_stock;"
        " unknown values: no filter"
    ),
]
Sort = Annotated[
    str | None, Query(description="name (default), stock or price; anything else: name")
]
Order = Annotated[str | None, Query(description="asc (default) or desc; anything else: asc")]
PageNumber = Annotated[str | None, Query(description="Page, from 1 (default 1; not an integer: 1)")]


def _limit_description(default: int) -> str:
    return f"Page size, clamped to [1, {MAX_LIMIT}] (default {default}; not an integer: {default})"


AllLimit = Annotated[str | None, Query(description=_limit_description(ALL_DEFAULT_LIMIT))]
ActiveLimit = Annotated[str | None, Query(description=_limit_description(ACTIVE_DEFAULT_LIMIT))]
MovementsLimit = Annotated[
    str | None, Query(description=_limit_description(MOVEMENTS_DEFAULT_LIMIT))
]


# Errors every route may answer besides its own (400: malformed query or path parameter).
READ_ERRORS = error_responses(400)
WRITE_ERRORS = error_responses(400, 403)


@asynccontextmanager
async def reading(runtime: ProductsRuntime) -> AsyncIterator[AsyncConnection]:
    """A connection for reads in autocommit: each read is one statement (one snapshot), so the
    BEGIN/ROLLBACK round trips of a transaction would buy nothing."""
    async with runtime.db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def product_query(
    search: str | None,
    view_mode: str | None,
    sort: str | None,
    order: str | None,
    *,
    active_only: bool,
) -> ProductQuery:
    """Upstream's parameters, whitelisted: anything unknown falls back to the default."""
    sort = sort if sort is not None else "name"
    order = (order if order is not None else "asc").lower()
    return ProductQuery(
        search=(search or "").strip(),
        view_mode=view_mode if view_mode is not None else "all",
        sort=sort if sort in repository.SORT_COLUMNS else "name",
        order=order if order in ("asc", "desc") else "asc",
        active_only=active_only,
    )


async def _list(
    runtime: ProductsRuntime,
    query: ProductQuery,
    page_number: str | None,
    limit: str | None,
    *,
    default_limit: int,
) -> Response:
    page = parse_page(page_number, limit, default_limit=default_limit, max_limit=MAX_LIMIT)
    async with reading(runtime) as conn:
        data, total = await repository.list_page(
            conn, query, limit=page.limit, offset=page.offset, tz=runtime.settings.timezone
        )
    return schemas.page_response(data, total, page)


@router.get(
    "/api/products_all",
    response_model=schemas.ProductPage,
    responses=READ_ERRORS,
    summary="List every product (active and disabled), paginated",
)
async def list_all_products(
    runtime: Runtime,
    caller: CurrentUser,
    search: Search = None,
    view_mode: ViewMode = None,
    sort: Sort = None,
    order: Order = None,
    page: PageNumber = None,
    limit: AllLimit = None,
) -> Response:
    query = product_query(search, view_mode, sort, order, active_only=False)
    return await _list(runtime, query, page, limit, default_limit=ALL_DEFAULT_LIMIT)


@router.get(
    "/api/products",
    response_model=schemas.ProductPage,
    responses=READ_ERRORS,
    summary="List active products, paginated",
    description="Only `status = 1`. `search` matches name or barcode; `view_mode=in_stock` is"
    " `quantity > 0` here and `low_stock` is no filter (upstream).",
)
async def list_active_products(
    runtime: Runtime,
    caller: CurrentUser,
    search: Search = None,
    view_mode: ViewMode = None,
    sort: Sort = None,
    order: Order = None,
    page: PageNumber = None,
    limit: ActiveLimit = None,
) -> Response:
    query = product_query(search, view_mode, sort, order, active_only=True)
    return await _list(runtime, query, page, limit, default_limit=ACTIVE_DEFAULT_LIMIT)


@router.get(
    "/api/items",
    response_model=list[schemas.ItemOut],
    responses=READ_ERRORS,
    summary="Autocomplete active products by barcode or name (at most 10)",
    description="An empty or missing `q` answers `[]`.",
)
async def autocomplete(
    runtime: Runtime,
    caller: CurrentUser,
    q: Annotated[str | None, Query(description="Substring of the barcode or name")] = None,
) -> Response:
    term = (q or "").strip()
    if not term:
        return json_response([])
    async with reading(runtime) as conn:
        rows = await repository.search_items(conn, term)
    return json_response([schemas.item(row) for row in rows])


@router.get(
    "/api/products/export",
    response_class=Response,
    responses={
        200: {
            "description": "Every product matching the filters, as CSV (UTF-8, comma separated;"
            " columns " + ",".join(csvio.EXPORT_COLUMNS) + ")",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **WRITE_ERRORS,
    },
    summary="Export products as CSV",
    description="Same filters and sort as products_all, no pagination. Cells a spreadsheet"
    " would run as a formula start with an apostrophe (removed again by the import).",
)
async def export_products(
    runtime: Runtime,
    caller: AdminUser,
    search: Search = None,
    view_mode: ViewMode = None,
    sort: Sort = None,
    order: Order = None,
) -> Response:
    query = product_query(search, view_mode, sort, order, active_only=False)
    async with reading(runtime) as conn:
        lines = await repository.export_csv(conn, query, runtime.settings.timezone)
    content = csvio.EXPORT_HEADER + lines
    tz = runtime.settings.tz
    filename = f"stockly_productos_{now_utc().astimezone(tz):%Y%m%d_%H%M}.csv"
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


_CSV_EXAMPLE = "barcode,name,quantity,price,description,min_quantity,expiration_date\n"
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A CSV file with a header row: required columns barcode, name, quantity,"
        " price; optional description, min_quantity, expiration_date; other columns are ignored"
        " (an export imports again). Comma, semicolon or tab separated; UTF-8 or Windows-1252."
        " Sent as the raw body or as the `file` field of a multipart form.",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/api/products/import",
    response_model=schemas.ImportResultOut,
    responses={
        **WRITE_ERRORS,
        400: {
            "model": schemas.ImportRejected,
            "description": "Invalid file, or invalid rows (nothing written)",
        },
        **error_responses(409, 415),
    },
    openapi_extra=IMPORT_BODY,
    summary="Import products from CSV (upsert by barcode)",
    description="All or nothing: any invalid row rejects the file (400 with every row error)"
    " unless `skip_invalid=1`, which imports the valid rows and reports the others. An existing"
    " barcode updates that product (empty optional cells keep the stored value); stock changes"
    " go through the stock ledger (reason `import`).",
)
async def import_products(
    request: Request,
    runtime: Runtime,
    caller: AdminUser,
    skip_invalid: Annotated[
        str | None,
        Query(description="1, true or yes: import the valid rows, report the invalid ones"),
    ] = None,
) -> Response:
    raw = csvio.extract_csv(await request.body(), request.headers.get("content-type"))
    skip = (skip_invalid or "").lower() in ("1", "true", "yes")
    async with runtime.transaction() as conn:
        result = await importer.import_csv(
            conn, caller, raw, max_rows=runtime.settings.import_max_rows, skip_invalid=skip
        )
    return json_response(result.body())


@router.post(
    "/api/products/update_price_bulk",
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **error_responses(404)},
    summary="Set the price of many products at once",
    description="All or nothing: every entry is validated and every id must exist (404 with"
    " `ids`) before anything is written. A repeated id: the last entry wins.",
)
async def update_price_bulk(
    runtime: Runtime, caller: AdminUser, body: schemas.PriceBulk
) -> Response:
    async with runtime.transaction() as conn:
        await service.update_prices(conn, caller, body.prices())
    return json_response({"message": schemas.PRICES_UPDATED})


@router.post(
    "/api/products/stock_update_bulk",
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **error_responses(404)},
    summary="Set the stock of many products at once",
    description="All or nothing, recorded in the stock ledger (reason `bulk_stock`); every id"
    " must exist (404 with `ids`). A repeated id: the last entry wins.",
)
async def stock_update_bulk(
    runtime: Runtime, caller: AdminUser, body: schemas.StockBulk
) -> Response:
    async with runtime.transaction() as conn:
        await service.update_stock(conn, caller, body.stock())
    return json_response({"message": schemas.STOCK_UPDATED})


@router.get(
    "/api/products/info/{barcode}",
    response_model=schemas.ProductFactsOut,
    responses={
        **error_responses(400, 404, 502),
        500: {"model": ErrorBody, "description": "OpenFoodFacts answered an error"},
    },
    summary="Look a barcode up in OpenFoodFacts (cached for an hour)",
    description="The barcode must be 1-32 digits (else 400). 404 when OpenFoodFacts does not"
    " know it, 502 when it cannot be reached in time, 500 when it answers an error (upstream).",
)
async def product_info(
    barcode: Annotated[
        str,
        # Documented only: the lookup itself answers "Código de barras inválido" (upstream).
        Path(description="1-32 digits", json_schema_extra={"pattern": r"^[0-9]{1,32}$"}),
    ],
    runtime: Runtime,
    caller: CurrentUser,
) -> Response:
    return json_response(await runtime.resources.openfoodfacts.lookup(barcode))


@router.get(
    "/api/products/{product_id}",
    response_model=schemas.ProductOut,
    responses=error_responses(400, 404),
    summary="One product (also when disabled)",
)
async def get_product(product_id: ProductId, runtime: Runtime, caller: CurrentUser) -> Response:
    async with reading(runtime) as conn:
        row = await repository.get_product_display(conn, product_id, runtime.settings.timezone)
    if row is None:
        raise NotFound(schemas.NOT_FOUND)
    return json_response(schemas.product(row))


@router.post(
    "/api/products",
    status_code=201,
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **error_responses(409)},
    summary="Create a product",
    description="The new id is not returned (upstream); find the product by barcode. A"
    " duplicate barcode is 409. The initial stock is recorded in the ledger (reason `initial`).",
)
async def create_product(
    runtime: Runtime, caller: AdminUser, body: schemas.ProductCreate
) -> Response:
    async with runtime.transaction() as conn:
        await service.create_product(conn, caller, body.values())
    return json_response({"message": schemas.CREATED}, status_code=201)


async def _known_product(product_id: ProductId, runtime: Runtime) -> None:
    """PUT answers an unknown product with 404 before judging its body (docs/api/products.md).
    Dependencies run before body validation, after the role check declared ahead of it; the
    service checks again under the row lock."""
    async with reading(runtime) as conn:
        if await repository.get_product(conn, product_id) is None:
            raise NotFound(schemas.NOT_FOUND)


@router.put(
    "/api/products/{product_id}",
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **error_responses(404, 409)},
    summary="Update some fields of a product",
    description="Only the fields sent are validated and changed; sending nothing that differs"
    " from the stored values is 400 `No hay datos para actualizar`. A `quantity` change is"
    " recorded in the stock ledger (reason `product_update`).",
)
async def update_product(
    product_id: ProductId,
    runtime: Runtime,
    caller: AdminUser,
    known: Annotated[None, Depends(_known_product)],
    body: schemas.ProductUpdate,
) -> Response:
    async with runtime.transaction() as conn:
        await service.update_product(conn, caller, product_id, body.changes())
    return json_response({"message": schemas.UPDATED})


@router.delete(
    "/api/products/{product_id}",
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **error_responses(404)},
    summary="Disable a product (soft delete; repeating it is a no-op)",
)
async def disable_product(product_id: ProductId, runtime: Runtime, caller: AdminUser) -> Response:
    async with runtime.transaction() as conn:
        await service.set_status(conn, caller, product_id, 0)
    return json_response({"message": schemas.DISABLED})


@router.post(
    "/api/products/{product_id}/activate",
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **error_responses(404)},
    summary="Activate a disabled product (repeating it is a no-op)",
)
async def activate_product(product_id: ProductId, runtime: Runtime, caller: AdminUser) -> Response:
    async with runtime.transaction() as conn:
        await service.set_status(conn, caller, product_id, 1)
    return json_response({"message": schemas.ACTIVATED})


@router.get(
    "/api/products/{product_id}/movements",
    response_model=schemas.MovementPage,
    responses={**WRITE_ERRORS, **error_responses(404)},
    summary="The stock ledger of a product, newest first, paginated",
)
async def product_movements(
    product_id: ProductId,
    runtime: Runtime,
    caller: AdminUser,
    page: PageNumber = None,
    limit: MovementsLimit = None,
) -> Response:
    paging = parse_page(page, limit, default_limit=MOVEMENTS_DEFAULT_LIMIT, max_limit=MAX_LIMIT)
    async with reading(runtime) as conn:
        if await repository.get_product(conn, product_id) is None:
            raise NotFound(schemas.NOT_FOUND)
        total = await repository.count_movements(conn, product_id)
        rows = await repository.list_movements(
            conn, product_id, limit=paging.limit, offset=paging.offset
        )
    tz = runtime.settings.tz
    return json_response(paging.envelope([schemas.movement(row, tz) for row in rows], total))
