"""All SQL of the products service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import (
    table as sql_table,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.products import csvio, search_cache
from services.products.tables import SEARCH_TERMS_SEPARATOR, items, search_terms, stock_movements
from stockmanager.sqltext import LIKE_ESCAPE, like_contains

PRODUCT_COLUMNS = (
    items.c.id,
    items.c.barcode,
    items.c.name,
    items.c.description,
    items.c.quantity,
    items.c.min_quantity,
    items.c.price,
    items.c.status,
    items.c.expiration_date,
    items.c.created_at,
    items.c.updated_at,
)

LOCAL_FORMAT = "YYYY-MM-DD HH24:MI:SS"  # upstream's local time format
SORT_COLUMNS = {"name": "name", "stock": "quantity", "price": "price"}
VIEW_MODES = ("all", "in_stock", "low_stock", "out_of_stock")


def fold(value: Any) -> ColumnElement[Any]:
    """Unicode case folding defined by the migration (search and the name sort use it)."""
    return func.products.search_fold(value)


PATTERN = bindparam("pattern", type_=String)


def contains(folded_column: ColumnElement[Any], pattern: Any = PATTERN) -> ColumnElement[bool]:
    """A LIKE pattern (`like_contains(term)`) on a folded column."""
    return folded_column.like(fold(pattern), escape=LIKE_ESCAPE)


def _matches(*, name_or_barcode_only: bool) -> ColumnElement[bool]:
    """A `search_terms` row (migration products_0010) whose product's name or barcode
    (`name_or_barcode_only`: /api/products, the autocomplete), else name, barcode or
    description (/api/products_all), contains the term of `:pattern` (`like_contains(term)`).

    `terms` joins the three folded fields with SEARCH_TERMS_SEPARATOR under the trigram
    index. A term without the separator is in the joined text exactly when one of the fields
    holds it, so a search of every field needs nothing more; a term with the separator could
    match across two fields, and a name-or-barcode search must not match descriptions: those
    check the fields themselves among the index's candidates. Searches are planned with their
    term (the service's custom plans), so `strpos(...) = 0` is a constant and, true, drops the
    field checks from the plan.
    """
    terms = search_terms.c
    by_name_or_barcode = or_(contains(terms.name_folded), contains(terms.barcode_folded))
    if name_or_barcode_only:
        return and_(contains(terms.terms), by_name_or_barcode)
    without_separator = func.strpos(fold(PATTERN), SEARCH_TERMS_SEPARATOR) == literal_column("0")
    by_description = terms.item_id.in_(
        select(items.c.id).where(contains(items.c.description_folded))
    )
    return and_(contains(terms.terms), or_(without_separator, by_name_or_barcode, by_description))


def _search(*, name_or_barcode_only: bool) -> ColumnElement[bool]:
    """`_matches` as a condition on `items`: the matching ids as an array (`id = ANY(...)`).

    Not a join: planned as one, the planner preferred hashing the matches against a
    sequential scan of `items` (20-25 ms for 2,000 matches of 50,000 products, against ~3 ms
    probing the primary key). Still 1-2 ms per 1,000 matches more than products_0002's
    indexes on `items` cost, which is why the searches sorted by name without a stock filter
    take their matches from `search_terms` alone (`_page_statement`, `search_items`).
    """
    matching = select(func.array_agg(search_terms.c.item_id)).where(
        _matches(name_or_barcode_only=name_or_barcode_only)
    )
    return items.c.id == any_(cast(matching.scalar_subquery(), ARRAY(BigInteger)))


# Written with literal constants so the planner can match the partial low-stock indexes.
LOW_STOCK = and_(items.c.quantity > literal_column("0"), items.c.quantity <= items.c.min_quantity)

# (searching, view_mode, sort, order, active_only): statements are built once per shape and
# reused with bound values, so SQLAlchemy's per-statement work (cache keys) is done once.
Shape = tuple[bool, str, str, str, bool]


@dataclass(frozen=True, slots=True)
class ProductQuery:
    """The filters and sort of the two list endpoints and the CSV export (reference §2.1)."""

    search: str = ""
    view_mode: str = "all"
    sort: str = "name"
    order: str = "asc"
    active_only: bool = False  # /api/products: status = 1, search name/barcode only

    @property
    def shape(self) -> Shape:
        view_mode = self.view_mode if self.view_mode in VIEW_MODES else "all"
        return (bool(self.search), view_mode, self.sort, self.order, self.active_only)

    def params(self) -> dict[str, Any]:
        return {"pattern": like_contains(self.search)} if self.search else {}


def _where(shape: Shape) -> list[ColumnElement[bool]]:
    searching, view_mode, _, _, active_only = shape
    clauses: list[ColumnElement[bool]] = []
    if active_only:
        clauses.append(items.c.status == literal_column("1"))
    if searching:
        clauses.append(_search(name_or_barcode_only=active_only))
    if active_only:
        if view_mode == "in_stock":
            clauses.append(items.c.quantity > literal_column("0"))
        elif view_mode == "out_of_stock":
            clauses.append(items.c.quantity == literal_column("0"))
    elif view_mode == "in_stock":
        clauses.append(items.c.quantity > items.c.min_quantity)
    elif view_mode == "low_stock":
        clauses.append(LOW_STOCK)
    elif view_mode == "out_of_stock":
        clauses.append(items.c.quantity == literal_column("0"))
    return clauses


def _sort_key(shape: Shape) -> ColumnElement[Any]:
    # Names sort case-insensitively (folded), then by id like every other sort.
    sort = shape[2]
    return items.c.name_folded if sort == "name" else items.c[SORT_COLUMNS[sort]]


def _order_by(shape: Shape, key: Any = None, id_column: Any = None) -> list[Any]:
    key = _sort_key(shape) if key is None else key
    id_column = items.c.id if id_column is None else id_column
    if shape[3] == "desc":
        return [key.desc(), id_column.desc()]
    return [key.asc(), id_column.asc()]


TZ = bindparam("tz", type_=String)


def display_columns() -> tuple[ColumnElement[Any], ...]:
    """Product columns ready for the wire, formatted by PostgreSQL (local times as upstream's
    `YYYY-MM-DD HH:MM:SS` in the business zone `:tz`, dates as text, money as a float): list
    pages then cost no per-row date or Decimal work in Python."""
    return (
        items.c.id,
        items.c.barcode,
        items.c.name,
        items.c.description,
        items.c.quantity,
        items.c.min_quantity,
        cast(items.c.price, Float).label("price"),
        items.c.status,
        func.to_char(items.c.expiration_date, "YYYY-MM-DD").label("expiration_date"),
        func.to_char(func.timezone(TZ, items.c.created_at), LOCAL_FORMAT).label("created_at"),
        func.to_char(func.timezone(TZ, items.c.updated_at), LOCAL_FORMAT).label("updated_at"),
    )


def counted_total(query: ProductQuery) -> Select[Any]:
    """A list's total counted by reading its products: what `list_total` must equal (tests),
    without products_0009's counts."""
    return select(func.count()).select_from(items).where(*_where(query.shape))


def _json_string(value: ColumnElement[Any]) -> ColumnElement[str]:
    """A text value as a JSON string, `null` for NULL. PostgreSQL's escaping (`"`, `\\`,
    `\\b\\f\\n\\r\\t`, other control characters as `\\u00xx`, the rest as UTF-8) is
    orjson's, byte for byte (tests/products/test_lists.py)."""
    return func.coalesce(cast(func.to_json(value), Text), literal_column("'null'"))


def _json_float(money: ColumnElement[Any]) -> ColumnElement[str]:
    """numeric(12,2) as the JSON text of the equal Python float: the shortest decimal with at
    least one fractional digit (`12.5`, `100.0`), which is what `orjson.dumps(float(...))`
    writes for every value of 12 digits or fewer."""
    trimmed = cast(func.trim_scale(money), Text)
    return case(
        (func.scale(func.trim_scale(money)) == literal_column("0"), trimmed.concat(".0")),
        else_=trimmed,
    )


# The wire names of a product's fields, in `display_columns` order (upstream's `stock`,
# `min_stock`); `schemas.product` zips rows with them, `product_json` writes them in SQL.
PRODUCT_KEYS = (
    "id",
    "barcode",
    "name",
    "description",
    "stock",
    "min_stock",
    "price",
    "status",
    "expiration_date",
    "created_at",
    "updated_at",
)


def product_json() -> ColumnElement[str]:
    """The product object of `schemas.product` (keys `PRODUCT_KEYS`, the values of
    `display_columns`) as compact JSON text built by PostgreSQL: a page then costs no per-row
    work in Python (no row objects, dicts or serialisation)."""
    tz_time = [
        func.to_char(func.timezone(TZ, column), LOCAL_FORMAT)
        for column in (
            items.c.created_at,
            items.c.updated_at,
        )
    ]
    values: list[ColumnElement[Any]] = [
        cast(items.c.id, Text),
        _json_string(items.c.barcode),
        _json_string(items.c.name),
        _json_string(items.c.description),
        cast(items.c.quantity, Text),
        cast(items.c.min_quantity, Text),
        _json_float(items.c.price),
        cast(items.c.status, Text),
        _json_string(func.to_char(items.c.expiration_date, "YYYY-MM-DD")),
        _json_string(tz_time[0]),
        _json_string(tz_time[1]),
    ]
    parts: list[Any] = []
    for index, (key, value) in enumerate(zip(PRODUCT_KEYS, values, strict=True)):
        opener = "{" if index == 0 else ","
        parts += [literal_column(f"'{opener}\"{key}\":'"), value]
    return func.concat(*parts, literal_column("'}'"))


def _search_hits(shape: Shape) -> Select[Any]:
    """A search's matches as (page_id, page_key). One sorted by name without a stock filter
    (`reusable`: it depends only on the products' status, name, barcode and description) reads
    `search_terms` alone, which holds all of that; the others read `items` for the stock,
    price or filter, probing it by id for each match (`_search`)."""
    if not reusable(shape):
        return select(items.c.id.label("page_id"), _sort_key(shape).label("page_key")).where(
            *_where(shape)
        )
    terms = search_terms.c
    active_only = shape[4]
    clauses = [_matches(name_or_barcode_only=active_only)]
    if active_only:
        clauses.append(terms.status == literal_column("1"))
    return select(terms.item_id.label("page_id"), terms.name_folded.label("page_key")).where(
        *clauses
    )


@lru_cache(maxsize=256)
def _page_statement(shape: Shape) -> Select[Any]:
    """One page (a JSON array text of `product_json` objects in the page's order, `[]` past
    the end) and the total, in one statement whose every plan stays fast on large catalogues,
    custom or generic (bench/results/products.md):

    - the page's ids (and sort keys) come first: without a search an index-only walk of the
      sort index (partial per view mode where one exists, products_0001/0007), cheap even for
      deep offsets; with a search from the matches, which the trigram index finds once (a
      materialized CTE: the planner misjudges how many rows match `'%term%'` and would
      otherwise walk the sort index filtering row by row, 30 ms instead of 2 ms);
    - each page row's object is a subquery by primary key, so no plan can join the page to
      the whole table (a generic plan, which does not know LIMIT, would otherwise hash-join
      it with a sequential scan);
    - the total is a separate subquery (the search's matches, or products_0009's counts of
      the list's buckets), outside the aggregate so that a page past the end still has it.
    """
    limit, offset = bindparam("limit", type_=BigInteger), bindparam("offset", type_=BigInteger)
    if shape[0]:
        hits = _search_hits(shape).cte("hits").prefix_with("MATERIALIZED")
        total: Any = select(func.count()).select_from(hits).scalar_subquery()
        page = (
            select(hits.c.page_id, hits.c.page_key)
            .order_by(*_order_by(shape, hits.c.page_key, hits.c.page_id))
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
    else:
        page = (
            select(items.c.id.label("page_id"), _sort_key(shape).label("page_key"))
            .where(*_where(shape))
            .order_by(*_order_by(shape))
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        total = list_total(shape)
    row = select(product_json()).where(items.c.id == page.c.page_id).scalar_subquery()
    order = _order_by(shape, page.c.page_key, page.c.page_id)
    rows = func.string_agg(row, aggregate_order_by(literal_column("','"), *order))
    data = func.coalesce(
        literal_column("'['").concat(rows).concat(literal_column("']'")),
        literal_column("'[]'"),
    )
    columns = [data.label("data"), total.label("total")]
    if not shape[0]:
        columns.append(LIST_COUNT_ROWS.label("count_rows"))
    else:
        # What the search cache keeps (search_cache.py): the page's ids, in order, and the
        # version of what searches can see that this answer was computed at.
        ids = func.array_agg(aggregate_order_by(page.c.page_id, *order))
        columns += [SEARCH_VERSION.label("version"), ids.label("ids")]
    return select(*columns).select_from(page)


# products_0009: signed per-bucket counts appended by the writers (status, stock class).
_list_counts = sql_table(
    "list_counts",
    column("status", Integer),
    column("stock_class", Integer),
    column("n", BigInteger),
    schema="products",
)
LIST_COUNT_ROWS: Any = select(func.count()).select_from(_list_counts).scalar_subquery()
# Past this many rows the next list folds them back into one per bucket.
COMPACT_LIST_COUNTS_AT = 500
OUT_OF_STOCK, LOW_STOCK_CLASS, IN_STOCK = 0, 1, 2  # products.stock_class


def _list_buckets(shape: Shape) -> list[ColumnElement[bool]]:
    """`_where(shape)` of a list without a search, as products_0009's buckets."""
    _, view_mode, _, _, active_only = shape
    status, stock_class = _list_counts.c.status, _list_counts.c.stock_class
    clauses: list[ColumnElement[bool]] = []
    if active_only:
        clauses.append(status == literal_column("1"))
        if view_mode == "in_stock":  # quantity > 0
            clauses.append(stock_class.in_([LOW_STOCK_CLASS, IN_STOCK]))
        elif view_mode == "out_of_stock":
            clauses.append(stock_class == OUT_OF_STOCK)
    elif view_mode == "in_stock":  # quantity > min_quantity
        clauses.append(stock_class == IN_STOCK)
    elif view_mode == "low_stock":
        clauses.append(stock_class == LOW_STOCK_CLASS)
    elif view_mode == "out_of_stock":
        clauses.append(stock_class == OUT_OF_STOCK)
    return clauses


def list_total(shape: Shape) -> Any:
    """The exact number of products in a list without a search: its buckets' sum, in the
    reader's snapshot (what `counted_total` counts, without reading the products)."""
    total = func.coalesce(func.sum(_list_counts.c.n), 0)
    return select(cast(total, BigInteger)).where(*_list_buckets(shape)).scalar_subquery()


_COMPACT_LIST_COUNTS = text(
    "WITH gone AS (DELETE FROM products.list_counts RETURNING status, stock_class, n)"
    " INSERT INTO products.list_counts (status, stock_class, n)"
    " SELECT status, stock_class, sum(n) FROM gone GROUP BY 1, 2 HAVING sum(n) <> 0"
)


async def compact_list_counts(conn: AsyncConnection) -> None:
    """Fold products_0009's rows into one per bucket, in one statement (autocommit `conn`).
    Rows appended by writers that commit meanwhile are not in this snapshot, so they are
    neither deleted nor summed: they keep counting. Two foldings at once: the second finds
    the rows gone and adds nothing."""
    await conn.execute(_COMPACT_LIST_COUNTS)


# products_0008: bumped by every change to which products a search by name finds, and in
# which order; read in the same statement as the rows it vouches for.
_search_version = sql_table("search_version", column("version", BigInteger), schema="products")
SEARCH_VERSION: Any = select(_search_version.c.version).scalar_subquery()


@lru_cache(maxsize=1)
def _rows_by_id_statement() -> Select[Any]:
    """The rows of a remembered page (`:ids`, in that order) as a JSON array, with the search
    version they are read at."""
    page = (
        func.unnest(bindparam("ids", type_=ARRAY(BigInteger)))
        .table_valued("page_id", with_ordinality="ordinal")
        .render_derived(name="page")
    )
    row = select(product_json()).where(items.c.id == page.c.page_id).scalar_subquery()
    rows = func.string_agg(row, aggregate_order_by(literal_column("','"), page.c.ordinal))
    data = func.coalesce(
        literal_column("'['").concat(rows).concat(literal_column("']'")),
        literal_column("'[]'"),
    )
    return select(data.label("data"), SEARCH_VERSION.label("version")).select_from(page)


def reusable(shape: Shape) -> bool:
    """Whether a search's answer (which products, in which order) depends only on what
    products_0008's version tracks: a search sorted by name, without a stock filter."""
    searching, view_mode, sort, _, active_only = shape
    unfiltered = view_mode == "all" or (active_only and view_mode == "low_stock")
    return searching and sort == "name" and unfiltered


APOSTROPHE: ColumnElement[str] = literal_column("''''")  # SQL text literal: one apostrophe
QUOTE: ColumnElement[str] = literal_column("'\"'")  # SQL text literal: one double quote
COMMA: ColumnElement[str] = literal_column("','")
CRLF: ColumnElement[str] = literal_column("E'\\r\\n'")


def _csv_text(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A text cell as Python's `csv` module writes it (QUOTE_MINIMAL: quoted, quotes doubled,
    when it holds a comma, a quote or a line break), after `csvio`'s formula protection."""
    safe = case(
        (func.left(value, 1).in_(csvio.FORMULA_START), APOSTROPHE.concat(value)),
        else_=value,
    )
    quoted = QUOTE.concat(func.replace(safe, '"', '""')).concat(QUOTE)
    return case((safe.regexp_match('[",\r\n]'), quoted), else_=safe)


def _csv_line() -> ColumnElement[Any]:
    """One export line (`csvio.EXPORT_COLUMNS`, CRLF-terminated) built by PostgreSQL, so an
    export of 50,000 products costs no per-row work in Python. `concat` writes NULL as empty."""
    cells: list[Any] = [
        items.c.id,
        _csv_text(items.c.barcode),
        _csv_text(items.c.name),
        _csv_text(items.c.description),
        items.c.quantity,
        items.c.min_quantity,
        items.c.price,  # numeric(12,2): always two decimals
        items.c.status,
        func.to_char(items.c.expiration_date, "YYYY-MM-DD"),
        func.to_char(func.timezone(TZ, items.c.created_at), LOCAL_FORMAT),
        func.to_char(func.timezone(TZ, items.c.updated_at), LOCAL_FORMAT),
    ]
    parts = [part for cell in cells for part in (cell, COMMA)][:-1]
    return func.concat(*parts, CRLF)


@lru_cache(maxsize=256)
def _export_statement(shape: Shape) -> Select[Any]:
    """The whole filtered list as CSV lines (one text value, no header), in the list's order."""
    lines = func.string_agg(
        _csv_line(), aggregate_order_by(literal_column("''"), *_order_by(shape))
    )
    return select(lines).where(*_where(shape))


def rows_by_id_statement(ids: list[int], *, tz: str) -> Select[Any]:
    """The search cache's statement with its values bound (for EXPLAIN in the benchmark)."""
    return _rows_by_id_statement().params(ids=ids, tz=tz)


def page_statement(query: ProductQuery, *, limit: int, offset: int, tz: str) -> Select[Any]:
    """The page statement with its values bound (for EXPLAIN in the benchmark)."""
    values = {**query.params(), "limit": limit, "offset": offset, "tz": tz}
    return _page_statement(query.shape).params(values)


def _compiled(statement: Select[Any]) -> tuple[str, dict[str, Any]]:
    """`statement` compiled once for psycopg: its SQL and the values of its constant binds
    (format strings). Lists and searches send it on the driver connection, so a page costs no
    SQLAlchemy statement or result machinery."""
    compiled = statement.compile(dialect=psycopg_dialect())  # type: ignore[no-untyped-call]
    return str(compiled), {k: v for k, v in compiled.params.items() if v is not None}


@lru_cache(maxsize=256)
def _page_sql(shape: Shape) -> tuple[str, dict[str, Any]]:
    return _compiled(_page_statement(shape))


@lru_cache(maxsize=1)
def _rows_by_id_sql() -> tuple[str, dict[str, Any]]:
    return _compiled(_rows_by_id_statement())


# Transaction-local, so the connection's own setting (force_custom_plan, services/products/
# app.py) is back when the list's (implicit) transaction ends, however it ends.
_GENERIC_PLAN = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"


async def _one_row(
    conn: AsyncConnection, sql: str, values: dict[str, Any], *, generic: bool
) -> Any:
    """The one row of an aggregate statement, sent on `conn`'s driver connection.

    `generic`: run on a generic plan, made once per connection, for statements shaped so that
    it is the custom one; planning them anew cost more than running them (0.3-0.9 ms of 1-2
    ms: the table's many partial indexes). One round trip either way (pipeline).
    """
    driver = await driver_connection(conn)
    try:
        if generic:
            # Both in one round trip and one implicit transaction (the pipeline's one Sync).
            async with driver.pipeline():
                await driver.execute(_GENERIC_PLAN)
                cursor = await driver.execute(sql, values, prepare=True)
        else:
            cursor = await driver.execute(sql, values)
        row = await cursor.fetchone()
    except BaseException as exc:
        # Whatever state the statement left (an aborted transaction, a pipeline cut short),
        # the pool must not hand this connection out again.
        await conn.invalidate()
        if isinstance(exc, psycopg.Error):
            # As SQLAlchemy raises it: the error handlers answer 503 when the database went
            # away, 500 otherwise (stockmanager.error_handlers).
            raise DBAPIError.instance(sql, values, exc, psycopg.Error) from exc
        raise
    assert row is not None  # an aggregate without GROUP BY: always one row
    return row


async def list_page(
    conn: AsyncConnection, query: ProductQuery, *, limit: int, offset: int, tz: str
) -> tuple[str, int]:
    """One page of `query` as a JSON array (text; `product_json` objects) and the total.

    Lists without a search run on a generic plan (`_page_statement` is shaped so that it is
    the custom one: index-only page walks, subqueries by primary key; products_0007 covers
    every view mode's sorts) and take their total from products_0009's counts, folding those
    when they have grown. A search is planned with its term (a term too short for
    trigrams must not take the trigram index); a `reusable` one is answered from the search
    cache while products_0008's version says its answer still holds: only the page's rows
    are read then, by primary key, fresh (stock, price).
    """
    shape = query.shape
    sql, constants = _page_sql(shape)
    values = {**constants, **query.params(), "limit": limit, "offset": offset, "tz": tz}
    if not query.search:
        data, total, count_rows = await _one_row(conn, sql, values, generic=True)
        if count_rows > COMPACT_LIST_COUNTS_AT:
            await compact_list_counts(conn)
        return str(data), int(total)
    key = (shape, query.search, limit, offset)
    known = search_cache.answers().get(key) if reusable(shape) else None
    if known is not None:
        by_id, by_id_constants = _rows_by_id_sql()
        # Custom-planned: its plan is cheap to make, cheaper than the pipeline a generic one
        # takes (0.09 ms of Python for 0.08 ms of PostgreSQL).
        data, version = await _one_row(
            conn, by_id, {**by_id_constants, "ids": known.ids, "tz": tz}, generic=False
        )
        if version == known.version:
            return str(data), known.total
    data, total, version, ids = await _one_row(conn, sql, values, generic=False)
    if reusable(shape):
        search_cache.answers().put(key, search_cache.Answer(int(version), list(ids or []), total))
    return str(data), int(total)


async def export_csv(conn: AsyncConnection, query: ProductQuery, tz: str) -> str:
    """The CSV lines of every product matching `query` (times local in `tz`), without header."""
    values = {**query.params(), "tz": tz}
    lines = await conn.scalar(_export_statement(query.shape), values)
    return str(lines or "")


def _autocomplete_order(exact: Any, prefix: Any, name: Any, item_id: Any) -> list[Any]:
    return [exact.desc(), prefix.desc(), name, item_id]


# The autocomplete's ten products are ranked in `search_terms` alone (status, folded name and
# barcode are there); only they are read from `items`.
_RANKED = (
    select(
        search_terms.c.item_id,
        (search_terms.c.barcode_folded == fold(bindparam("term", type_=String))).label("exact"),
        contains(search_terms.c.name_folded, bindparam("prefix", type_=String)).label("prefix"),
        search_terms.c.name_folded,
    )
    .where(search_terms.c.status == literal_column("1"), _matches(name_or_barcode_only=True))
    .order_by(
        *_autocomplete_order(
            literal_column("exact"),
            literal_column("prefix"),
            search_terms.c.name_folded,
            search_terms.c.item_id,
        )
    )
    .limit(bindparam("limit", type_=Integer))
    .subquery("ranked")
)
_ITEMS_STATEMENT = (
    select(
        items.c.id,
        items.c.barcode,
        items.c.name,
        items.c.description,
        items.c.quantity,
        cast(items.c.price, Float).label("price"),
    )
    .join_from(_RANKED, items, items.c.id == _RANKED.c.item_id)
    .order_by(
        *_autocomplete_order(
            _RANKED.c.exact, _RANKED.c.prefix, _RANKED.c.name_folded, _RANKED.c.item_id
        )
    )
)


async def search_items(conn: AsyncConnection, term: str, *, limit: int = 10) -> Sequence[Any]:
    """Autocomplete: active products whose barcode or name contains the term.

    Exact barcode first, then names starting with the term, then the rest by name and id.
    """
    pattern = like_contains(term)
    values = {"pattern": pattern, "term": term, "prefix": pattern[1:], "limit": limit}
    return (await conn.execute(_ITEMS_STATEMENT, values)).all()


_DISPLAY_ONE = select(*display_columns()).where(items.c.id == bindparam("product_id"))


async def get_product_display(conn: AsyncConnection, product_id: int, tz: str) -> Any | None:
    return (await conn.execute(_DISPLAY_ONE, {"product_id": product_id, "tz": tz})).first()


async def get_product(conn: AsyncConnection, product_id: int) -> Any | None:
    return (await conn.execute(select(*PRODUCT_COLUMNS).where(items.c.id == product_id))).first()


async def lock_product(conn: AsyncConnection, product_id: int) -> Any | None:
    statement = select(*PRODUCT_COLUMNS).where(items.c.id == product_id).with_for_update()
    return (await conn.execute(statement)).first()


async def lock_products(conn: AsyncConnection, product_ids: Iterable[int]) -> dict[int, Any]:
    """Lock rows in ascending id order (the order the stock function uses: no deadlocks)."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    statement = (
        select(*PRODUCT_COLUMNS).where(items.c.id.in_(ids)).order_by(items.c.id).with_for_update()
    )
    return {row.id: row for row in (await conn.execute(statement)).all()}


async def insert_product(conn: AsyncConnection, values: dict[str, Any]) -> int:
    new_id = await conn.scalar(insert(items).values(**values).returning(items.c.id))
    assert isinstance(new_id, int)
    return new_id


async def update_product(conn: AsyncConnection, product_id: int, values: dict[str, Any]) -> None:
    await conn.execute(
        update(items).where(items.c.id == product_id).values(**values, updated_at=func.now())
    )


async def update_products(
    conn: AsyncConnection, columns: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """Set `columns` on many products; each row has `b_id` and `b_<column>`."""
    if not rows or not columns:
        return
    statement = (
        update(items)
        .where(items.c.id == bindparam("b_id"))
        .values(
            {**{column: bindparam(f"b_{column}") for column in columns}, "updated_at": func.now()}
        )
    )
    await conn.execute(statement, rows)


async def set_prices(conn: AsyncConnection, prices: dict[int, Decimal]) -> None:
    await update_products(
        conn, ["price"], [{"b_id": pid, "b_price": price} for pid, price in prices.items()]
    )


async def set_status(conn: AsyncConnection, product_id: int, status: int) -> None:
    await update_product(conn, product_id, {"status": status})


# -- the ledger -------------------------------------------------------------------------------


async def count_movements(conn: AsyncConnection, product_id: int) -> int:
    total = await conn.scalar(
        select(func.count())
        .select_from(stock_movements)
        .where(stock_movements.c.item_id == product_id)
    )
    return int(total or 0)


async def list_movements(
    conn: AsyncConnection, product_id: int, *, limit: int, offset: int
) -> Sequence[Any]:
    """Newest first. Ids are assigned under the item's row lock, so id order is change order."""
    statement = (
        select(stock_movements)
        .where(stock_movements.c.item_id == product_id)
        .order_by(stock_movements.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return (await conn.execute(statement)).all()


async def driver_connection(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under `conn` (same transaction): for COPY and the page
    statements prepared on it."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver
