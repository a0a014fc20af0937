"""SQL of the sales history: the list with its filters, one sale, its lines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales.model import Sale, SaleFilters, SaleLine
from services.sales.tables import sale_lines, sales
from stockmanager.contracts.users_directory import directory as users_directory
from stockmanager.sqltext import LIKE_ESCAPE, like_contains


def _fold(value: Any) -> Any:
    return func.sales.search_fold(value)


def _contains(column: Any, term: str) -> Any:
    return _fold(column).like(_fold(like_contains(term)), escape=LIKE_ESCAPE)


def _filtered(query: Select[Any], filters: SaleFilters) -> Select[Any]:
    if filters.only_vendor_id is not None:
        query = query.where(sales.c.vendor_id == filters.only_vendor_id)
    if filters.start is not None:
        query = query.where(sales.c.created_at >= filters.start)
    if filters.end is not None:
        query = query.where(sales.c.created_at < filters.end)
    if filters.product:
        query = query.where(
            select(sale_lines.c.id)
            .where(
                sale_lines.c.sale_id == sales.c.id,
                _contains(sale_lines.c.item_name, filters.product),
            )
            .exists()
        )
    if filters.vendedor:
        matching_users = select(users_directory.c.id).where(
            or_(
                _contains(users_directory.c.username, filters.vendedor),
                _contains(users_directory.c.email, filters.vendedor),
            )
        )
        query = query.where(
            or_(
                _contains(sales.c.vendor_username, filters.vendedor),
                sales.c.vendor_id.in_(matching_users),
            )
        )
    return query


async def count_sales(conn: AsyncConnection, filters: SaleFilters) -> int:
    query = _filtered(select(func.count()).select_from(sales), filters)
    return int(await conn.scalar(query) or 0)


async def list_sales(
    conn: AsyncConnection, filters: SaleFilters, *, offset: int, limit: int
) -> list[Sale]:
    headers = (
        await conn.execute(
            _filtered(select(sales), filters)
            .order_by(sales.c.created_at.desc(), sales.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    lines = await _lines_of(conn, [row.id for row in headers])
    return [_sale(row, lines.get(row.id, ())) for row in headers]


async def get_sale(
    conn: AsyncConnection, sale_id: int, *, only_vendor_id: int | None
) -> Sale | None:
    query = select(sales).where(sales.c.id == sale_id)
    if only_vendor_id is not None:
        query = query.where(sales.c.vendor_id == only_vendor_id)
    header = (await conn.execute(query)).first()
    if header is None:
        return None
    lines = await _lines_of(conn, [sale_id])
    return _sale(header, lines.get(sale_id, ()))


async def _lines_of(conn: AsyncConnection, sale_ids: list[int]) -> dict[int, list[SaleLine]]:
    if not sale_ids:
        return {}
    rows = (
        await conn.execute(
            select(
                sale_lines.c.sale_id,
                sale_lines.c.item_id,
                sale_lines.c.item_name,
                sale_lines.c.quantity,
                sale_lines.c.unit_price,
            )
            .where(sale_lines.c.sale_id.in_(sale_ids))
            .order_by(sale_lines.c.sale_id, sale_lines.c.id)
        )
    ).all()
    grouped: dict[int, list[SaleLine]] = {}
    for row in rows:
        grouped.setdefault(row.sale_id, []).append(
            SaleLine(row.item_id, row.item_name, row.quantity, row.unit_price)
        )
    return grouped


def _sale(row: Any, lines: Iterable[SaleLine]) -> Sale:
    return Sale(
        id=row.id,
        sold_at=row.created_at,
        vendor_id=row.vendor_id,
        vendor_username=row.vendor_username,
        payment_method=row.payment_method,
        lines=tuple(lines),
    )
