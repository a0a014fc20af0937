"""products_0010: searches find products through `products.search_terms`, which triggers on
`products.items` keep equal to the products' folded name, barcode and description.

Searches must find exactly what they found when each field had its own trigram index: the
reference below is that definition (a field of the product contains the folded term).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.products import repository, upstream_import
from services.products.repository import ProductQuery, fold
from services.products.tables import SEARCH_TERMS_SEPARATOR, items
from stockmanager.contracts.stock import StockMovements, apply_stock_movements
from stockmanager.db import Database
from stockmanager.sqltext import LIKE_ESCAPE, like_contains
from stockmanager.upstream.records import Actor, ProductRecord
from stockmanager.upstream.report import Report
from tests.products.conftest import create_product, find_by_barcode
from tests.support.stack import ApiClient, unique

SEP = SEARCH_TERMS_SEPARATOR
CSV = {"content-type": "text/csv"}

# Products whose search terms row is missing, left over or stale (must be 0).
MISMATCHES = text(
    "SELECT count(*) FROM products.items AS i"
    " FULL JOIN products.search_terms AS st ON st.item_id = i.id"
    " WHERE (st.status, st.name_folded, st.barcode_folded, st.terms) IS DISTINCT FROM"
    " (i.status, i.name_folded, i.barcode_folded,"
    "  products.search_terms_of(i.name_folded, i.barcode_folded, i.description_folded))"
)


async def mismatches(conn: AsyncConnection) -> int:
    return int(await conn.scalar(MISMATCHES) or 0)


async def written(conn: AsyncConnection) -> tuple[int, int, int]:
    """Rows of `search_terms` inserted, updated and deleted by this connection's session, this
    transaction included (PostgreSQL counts them for the statistics; earlier transactions'
    counts may not have been handed over yet, so compare two readings)."""
    row = (
        await conn.execute(
            text(
                "SELECT pg_stat_get_xact_tuples_inserted(r), pg_stat_get_xact_tuples_updated(r),"
                " pg_stat_get_xact_tuples_deleted(r)"
                " FROM CAST('products.search_terms' AS regclass) AS r"
            )
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def insert(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[int]:
    made = []
    for row in rows:
        values = {"description": "", "price": 1, "status": 1, **row}
        made.append(int(await conn.scalar(items.insert().values(values).returning(items.c.id))))
    return made


def reference(term: str, *, name_or_barcode_only: bool) -> Any:
    """The ids a search found before products_0010 (each field tested on its own)."""
    fields: list[ColumnElement[Any]] = [items.c.name_folded, items.c.barcode_folded]
    if not name_or_barcode_only:
        fields.append(items.c.description_folded)
    pattern = fold(like_contains(term))
    statement = select(items.c.id).where(
        or_(*(f.like(pattern, escape=LIKE_ESCAPE) for f in fields))
    )
    return statement.where(items.c.status == 1) if name_or_barcode_only else statement


async def found(conn: AsyncConnection, query: ProductQuery) -> set[int]:
    """The products `query` finds, read both ways a search reads them: through `items` (the
    export, and searches sorted or filtered by stock or price) and as a list page (a search
    sorted by name takes its matches from `search_terms` alone); both must agree."""
    statement = repository.counted_total(query).with_only_columns(items.c.id)
    through_items = set((await conn.execute(statement, query.params())).scalars())
    data, total = await repository.list_page(conn, query, limit=100_000, offset=0, tz="UTC")
    listed = {product["id"] for product in json.loads(data)}
    assert listed == through_items and total == len(listed), query
    return listed


async def test_search_terms_join_the_folded_fields_with_the_separator(
    conn: AsyncConnection,
) -> None:
    [item] = await insert(
        conn, [{"barcode": unique("B")[:20], "name": "ÉCLAIR", "description": "Crème"}]
    )
    terms = await conn.scalar(
        text("SELECT terms FROM products.search_terms WHERE item_id = :i"), {"i": item}
    )
    barcode = await conn.scalar(select(items.c.barcode_folded).where(items.c.id == item))
    assert terms == f"éclair{SEP}{barcode}{SEP}crème"


async def test_searches_find_what_each_field_on_its_own_found(conn: AsyncConnection) -> None:
    """Fields, accents and case folding, partial terms, LIKE metacharacters, and terms that
    contain the separator (which must never match across two fields)."""
    tag = unique("st")[:8]
    made = await insert(
        conn,
        [
            {"name": f"{tag} Éclair", "barcode": f"{tag}B1", "description": "Crème brûlée"},
            {"name": "ab", "barcode": f"cd{tag}", "description": "ef"},
            {"name": f"x{SEP}y", "barcode": f"{tag}2", "description": f"z{SEP}"},
            {"name": "50% off_", "barcode": None, "description": "back\\slash"},
            {"name": "plain", "barcode": f"{tag}3", "description": f"only here {tag}desc"},
            {"name": f"Straße {tag}", "barcode": f"{tag}4", "status": 0},
            {"name": "ΣΟΦΙΑ", "barcode": f"{tag}5", "description": "Σοφία"},
        ],
    )
    mine = set(made)
    terms = [
        tag,
        f"{tag}desc",
        "ÉCLAIR",
        "éclair",
        "eclair",
        "brû",
        "CRÈME BRÛLÉE",
        "strasse",
        "σοφια",
        "ab",
        f"b{SEP}c",
        f"ab{SEP}cd",
        SEP,
        f"x{SEP}y",
        f"y{SEP}",
        f"{SEP}{tag}",
        f"f{SEP}",
        "%",
        "_",
        "\\",
        "0% o",
        "f_",
        "%f",
        "ab%ef",
        "back\\s",
    ]
    for term in terms:
        for active_only in (False, True):
            query = ProductQuery(search=term, active_only=active_only)
            expected = set(
                (await conn.execute(reference(term, name_or_barcode_only=active_only))).scalars()
            )
            assert await found(conn, query) & mine == expected & mine, (term, active_only)
        autocomplete = {row.id for row in await repository.search_items(conn, term, limit=100)}
        expected = set((await conn.execute(reference(term, name_or_barcode_only=True))).scalars())
        assert autocomplete & mine == expected & mine, term
    # The separator itself finds only the products whose fields hold it, never a boundary.
    assert await found(conn, ProductQuery(search=SEP)) & mine == {made[2]}
    assert await found(conn, ProductQuery(search=f"b{SEP}c")) & mine == set()


async def test_a_search_page_is_the_reference_list_in_order(conn: AsyncConnection) -> None:
    tag = unique("sp")[:8]
    await insert(
        conn,
        [
            {"name": f"{name} {tag}", "barcode": f"{tag}{index}", "description": "d"}
            for index, name in enumerate(["b", "A", "a", "Á", "c", "B"])
        ]
        + [{"name": "other", "barcode": f"x{tag}", "description": f"about {tag}"}],
    )
    order = [items.c.name_folded, items.c.id]
    expected = list(
        (await conn.execute(reference(tag, name_or_barcode_only=False).order_by(*order))).scalars()
    )
    assert len(expected) == 7
    pages = []
    for offset in (0, 3, 6, 9):
        data, total = await repository.list_page(
            conn, ProductQuery(search=tag), limit=3, offset=offset, tz="UTC"
        )
        assert total == len(expected)
        pages += [product["id"] for product in json.loads(data)]
    assert pages == expected


async def test_search_terms_follow_every_write_to_the_products(conn: AsyncConnection) -> None:
    tag = unique("fw")[:8]
    before = await written(conn)
    made = list(
        (
            await conn.execute(
                text(
                    "INSERT INTO products.items (barcode, name, description, price)"
                    " SELECT :t || g, 'Follow ' || g, 'Desc ' || g, 1"
                    " FROM generate_series(1, 30) AS g RETURNING id"
                ),
                {"t": tag},
            )
        ).scalars()
    )
    assert await mismatches(conn) == 0
    assert (await written(conn))[0] == before[0] + 30
    for column, value in (
        ("name", "'RENAMED ' || id"),
        ("status", "0"),
        ("barcode", "NULL"),
        ("barcode", f"'{tag}x' || id"),
        ("description", "'Ünïcode ' || id"),
        ("name", "lower(name)"),
    ):
        await conn.execute(
            text(f"UPDATE products.items SET {column} = {value} WHERE id = ANY(:ids)"),
            {"ids": made[::3]},
        )
        assert await mismatches(conn) == 0, column
    await conn.execute(text("DELETE FROM products.items WHERE id = ANY(:ids)"), {"ids": made[:5]})
    assert await mismatches(conn) == 0
    left = await conn.scalar(
        text("SELECT count(*) FROM products.search_terms WHERE item_id = ANY(:ids)"),
        {"ids": made[:5]},
    )
    assert left == 0
    await conn.execute(text("TRUNCATE products.items CASCADE"))
    assert await conn.scalar(text("SELECT count(*) FROM products.search_terms")) == 0


async def test_stock_and_price_changes_write_no_search_terms(conn: AsyncConnection) -> None:
    """What products_0010 is for: a stock change (every sale) leaves `search_terms` alone, and
    so does an update that sets a searchable field to a value of the same folding; a status
    change (searches filter on it) rewrites the product's row."""
    made = await insert(
        conn, [{"barcode": unique("sc")[:20], "name": f"Stock {i}"} for i in range(3)]
    )
    before = await written(conn)
    deltas = dict.fromkeys(made, 4)
    await apply_stock_movements(conn, StockMovements(deltas, "bulk_stock", None, None, None))
    await conn.execute(
        text(
            "UPDATE products.items SET price = price + 1, min_quantity = 2,"
            " name = upper(name), description = description WHERE id = ANY(:ids)"
        ),
        {"ids": made},
    )
    assert await written(conn) == before
    await conn.execute(
        text("UPDATE products.items SET name = name || 'x' WHERE id = :i"), {"i": made[0]}
    )
    assert await written(conn) == (before[0], before[1] + 1, before[2])
    await conn.execute(
        text("UPDATE products.items SET status = 0 WHERE id = ANY(:ids)"), {"ids": made}
    )
    assert await written(conn) == (before[0], before[1] + 4, before[2])
    assert await mismatches(conn) == 0


async def test_the_upstream_import_writes_search_terms(conn: AsyncConnection) -> None:
    now = datetime.now(UTC)
    tag = unique("up")[:8]
    products = [
        ProductRecord(
            upstream_id=900_000_000 + index,
            barcode=f"{tag}{index}",
            name=f"Upstream {index}",
            description=f"upstream {tag}",
            quantity=index,
            min_quantity=1,
            price=Decimal("2.50"),
            expiration_date=None,
            status=1,
            created_at=now,
            updated_at=now,
        )
        for index in range(4)
    ]
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    mapped = await upstream_import.import_products(
        driver, unique("src"), products, Actor(None, None, None), Report(path="test")
    )
    assert len(mapped) == 4
    assert await mismatches(conn) == 0
    assert await found(conn, ProductQuery(search=f"UPSTREAM {tag}")) == set(mapped.values())


def test_api_and_csv_writes_keep_search_terms(admin: ApiClient, seller: ApiClient) -> None:
    tag = unique("api")[:10]
    made = create_product(admin, name=f"Api {tag}", description="first")
    response = admin.put(
        f"/api/products/{made['id']}", json={"name": f"Api2 {tag}", "description": f"d{tag}"}
    )
    assert response.status_code == 200, response.text
    lines = ["barcode,name,quantity,price,description"]
    lines += [f"{tag}{i},Csv {tag} {i},{i},1.00,new" for i in range(5)]
    response = admin.post("/api/products/import", content="\n".join(lines) + "\n", headers=CSV)
    assert response.status_code == 200 and response.json()["created"] == 5, response.text
    lines = ["barcode,name,quantity,price,description"]
    lines += [f"{tag}{i},Renamed {i},{i + 1},1.00,changed {tag}" for i in range(5)]
    response = admin.post("/api/products/import", content="\n".join(lines) + "\n", headers=CSV)
    assert response.status_code == 200 and response.json()["updated"] == 5, response.text

    def search(term: str, path: str = "/api/products_all") -> set[int]:
        response = seller.get(path, params={"search": term, "limit": 100})
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["data"]}

    csv_ids = {find_by_barcode(seller, f"{tag}{i}")["id"] for i in range(5)}
    assert search(f"d{tag}") == {made["id"]}
    assert search(f"changed {tag}") == csv_ids
    assert search(f"Csv {tag}") == set()
    assert search(f"changed {tag}", "/api/products") == set()  # descriptions: products_all only
    assert search(f"API2 {tag}", "/api/products") == {made["id"]}
    assert search(f"Api {tag}") == set()


async def test_every_product_in_the_database_has_its_search_terms(db: Database) -> None:
    """Whatever the tests before this one wrote (and committed), through any path."""
    async with db.connect() as conn:
        assert await mismatches(conn) == 0
