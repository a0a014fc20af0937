"""List endpoints, autocomplete and search semantics through the gateway.

Tests share one database, so each test tags its products with a unique token and filters on it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from services.products import repository
from services.products.repository import ProductQuery
from stockmanager.contracts.stock import StockMovements, apply_stock_movements
from stockmanager.db import Database
from tests.products.conftest import create_product
from tests.support.stack import ApiClient, unique


def tagged(admin: ApiClient, tag: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create products whose names start with `tag` (so `search=tag` selects exactly them)."""
    made = []
    for index, spec in enumerate(specs):
        name = spec.pop("name", f"{tag}{index:02d}")
        made.append(create_product(admin, name=name, **spec))
    return made


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["data"]]


def test_envelope_defaults_and_clamps(seller: ApiClient, admin: ApiClient) -> None:
    tag = unique("env")[:12]
    tagged(admin, tag, [{} for _ in range(3)])
    body = seller.get("/api/products_all", params={"search": tag}).json()
    assert set(body) == {"data", "total", "page", "pages", "limit"}
    assert (body["total"], body["page"], body["pages"], body["limit"]) == (3, 1, 1, 50)
    assert seller.get("/api/products", params={"search": tag}).json()["limit"] == 24
    for params, expected in [
        ({"limit": "1000"}, (1, 250)),
        ({"limit": "0"}, (1, 1)),
        ({"limit": "-5", "page": "-2"}, (1, 1)),
        ({"limit": "abc", "page": "x"}, (1, 50)),
        ({"limit": "2", "page": "2"}, (2, 2)),
    ]:
        got = seller.get("/api/products_all", params={"search": tag, **params}).json()
        assert (got["page"], got["limit"]) == expected, params
    page2 = seller.get("/api/products_all", params={"search": tag, "limit": 2, "page": 2}).json()
    assert (len(page2["data"]), page2["total"], page2["pages"]) == (1, 3, 2)
    past = seller.get("/api/products_all", params={"search": tag, "limit": 2, "page": 9}).json()
    assert (past["data"], past["total"], past["pages"]) == ([], 3, 2)
    empty = seller.get("/api/products_all", params={"search": unique("none")}).json()
    assert (empty["data"], empty["total"], empty["pages"]) == ([], 0, 1)


def test_sorts_with_id_tie_breaker(seller: ApiClient, admin: ApiClient) -> None:
    tag = unique("srt")[:12]
    made = tagged(
        admin,
        tag,
        [
            {"name": f"{tag}b", "price": 5, "quantity": 9},
            {"name": f"{tag}A", "price": 5, "quantity": 1},
            {"name": f"{tag}c", "price": 1, "quantity": 9},
            {"name": f"{tag}a", "price": 5, "quantity": 9},
        ],
    )
    b, upper_a, c, lower_a = (p["id"] for p in made)

    def order(**params: str) -> list[int]:
        return ids(seller.get("/api/products_all", params={"search": tag, **params}))

    # Names sort case-insensitively; equal names fall back to the id.
    assert order() == [upper_a, lower_a, b, c]
    assert order(sort="name", order="DESC") == [c, b, lower_a, upper_a]
    assert order(sort="price") == [c, b, upper_a, lower_a]
    assert order(sort="price", order="desc") == [lower_a, upper_a, b, c]
    assert order(sort="stock") == [upper_a, b, c, lower_a]
    assert order(sort="stock", order="desc") == [lower_a, c, b, upper_a]
    # Unknown sort/order fall back to name/asc.
    assert order(sort="quantity; DROP TABLE", order="sideways") == order()
    assert ids(seller.get("/api/products", params={"search": tag, "sort": "price"})) == order(
        sort="price"
    )


def test_view_modes(seller: ApiClient, admin: ApiClient) -> None:
    tag = unique("vm")[:12]
    made = tagged(
        admin,
        tag,
        [
            {"quantity": 10, "min_quantity": 5},  # in stock
            {"quantity": 5, "min_quantity": 5},  # low (<= min)
            {"quantity": 1, "min_quantity": 5},  # low
            {"quantity": 0, "min_quantity": 5},  # out of stock
        ],
    )
    plenty, at_min, one, zero = (p["id"] for p in made)

    def mode(path: str, view_mode: str) -> set[int]:
        return set(ids(seller.get(path, params={"search": tag, "view_mode": view_mode})))

    assert mode("/api/products_all", "all") == {plenty, at_min, one, zero}
    assert mode("/api/products_all", "in_stock") == {plenty}
    assert mode("/api/products_all", "low_stock") == {at_min, one}
    assert mode("/api/products_all", "out_of_stock") == {zero}
    assert mode("/api/products_all", "bogus") == {plenty, at_min, one, zero}
    # /api/products: in_stock means quantity > 0; low_stock is not a filter there (upstream).
    assert mode("/api/products", "in_stock") == {plenty, at_min, one}
    assert mode("/api/products", "out_of_stock") == {zero}
    assert mode("/api/products", "low_stock") == {plenty, at_min, one, zero}
    # Disabled products: only in products_all.
    admin.delete(f"/api/products/{one}")
    assert mode("/api/products", "all") == {plenty, at_min, zero}
    assert mode("/api/products_all", "low_stock") == {at_min, one}


def test_list_objects_are_the_detail_objects_byte_for_byte(
    seller: ApiClient, admin: ApiClient
) -> None:
    """List pages are JSON written by PostgreSQL (repository.product_json), the detail is
    serialised by orjson in Python: both must write every value the same way (floats with a
    fractional digit, escapes, non-ASCII text, nulls)."""
    tag = unique("js")[:12]
    made = tagged(
        admin,
        tag,
        [
            {"price": 0, "description": 'comillas " y barra \\ y tab\tfin'},
            {"price": 100, "expiration_date": "2031-02-03", "description": "ñandú 🍞 <b>&"},
            {"price": "12.5", "description": ""},
            {"price": "0.05", "expiration_date": None},
            {"price": "999999.99"},
            {"price": 1000000},
            {"price": "1234.56", "name": f'{tag}"\\é'},
        ],
    )
    for path in ("/api/products_all", "/api/products"):
        listed = seller.get(path, params={"search": tag, "limit": 250})
        assert listed.headers["content-type"] == "application/json"
        assert len(listed.json()["data"]) == len(made)
        for product in listed.json()["data"]:
            detail = seller.get(f"/api/products/{product['id']}")
            assert detail.json() == product
            assert detail.content in listed.content, (detail.content, listed.content)
    prices = {p["id"]: p["price"] for p in made}
    assert sorted(prices.values()) == [0.0, 0.05, 12.5, 100.0, 1234.56, 999999.99, 1000000.0]


def test_search_fields(seller: ApiClient, admin: ApiClient) -> None:
    token = unique("fld")[:12]
    by_name = create_product(admin, name=f"x{token}")
    by_barcode = create_product(admin, barcode=f"9{token}")
    by_description = create_product(admin, description=f"about {token} things")
    everywhere = {by_name["id"], by_barcode["id"], by_description["id"]}
    assert set(ids(seller.get("/api/products_all", params={"search": f"  {token} "}))) == (
        everywhere
    )
    # /api/products matches name or barcode only.
    assert set(ids(seller.get("/api/products", params={"search": token}))) == {
        by_name["id"],
        by_barcode["id"],
    }


def test_search_is_case_insensitive_for_all_of_unicode(seller: ApiClient, admin: ApiClient) -> None:
    token = unique("u")[:10]
    eclair = create_product(admin, name=f"éclair {token}")
    greek = create_product(admin, name=f"ΣΟΦΙΑ {token}")
    street = create_product(admin, name=f"Straße {token}")

    def found(term: str) -> set[int]:
        return set(ids(seller.get("/api/products_all", params={"search": term})))

    assert eclair["id"] in found(f"ÉCLAIR {token}")
    assert eclair["id"] in found(f"Éclair {token.upper()}")
    assert greek["id"] in found(f"σοφια {token}")
    assert street["id"] in found(f"STRASSE {token}") | found(f"STRAßE {token}")
    assert eclair["id"] not in found(f"eclair {token}")  # accents are not ignored
    items = seller.get("/api/items", params={"q": f"ÉCLAIR {token}"}).json()
    assert [item["id"] for item in items] == [eclair["id"]]


def test_wildcards_in_search_are_literal(seller: ApiClient, admin: ApiClient) -> None:
    token = unique("w")[:10]
    percent = create_product(admin, name=f"{token} 50% off")
    underscore = create_product(admin, name=f"{token} a_b")
    other = create_product(admin, name=f"{token} 50x offab")

    def found(term: str) -> set[int]:
        return set(ids(seller.get("/api/products_all", params={"search": term})))

    assert found(f"{token} 50%") == {percent["id"]}
    assert found(f"{token} a_b") == {underscore["id"]}
    assert found("%") >= {percent["id"]} and other["id"] not in found("%")
    assert other["id"] not in found("_b")
    assert found(f"{token}\\") == set()


def test_items_autocomplete(seller: ApiClient, admin: ApiClient) -> None:
    assert seller.get("/api/items").json() == []
    assert seller.get("/api/items", params={"q": "   "}).json() == []
    token = unique("ac")[:10]
    made = [create_product(admin, name=f"z{token}{i:02d}", price=i + 1) for i in range(12)]
    exact = create_product(admin, barcode=token, name="Exacto")
    prefix = create_product(admin, name=f"{token} primero")
    results = seller.get("/api/items", params={"q": token}).json()
    assert len(results) == 10
    assert set(results[0]) == {"id", "barcode", "name", "description", "stock", "price"}
    assert results[0] == {
        "id": exact["id"],
        "barcode": token,
        "name": "Exacto",
        "description": exact["description"],
        "stock": exact["stock"],
        "price": exact["price"],
    }
    assert results[1]["id"] == prefix["id"]
    assert [r["id"] for r in results[2:]] == [p["id"] for p in made[:8]]


async def test_search_uses_the_trigram_index(db: Database) -> None:
    """Searches find their candidates through products_0010's one trigram index (the
    statement the service sends, planned with its term)."""
    for active_only in (False, True):
        query = ProductQuery(search="ÉCLAIR", active_only=active_only)
        statement = repository.counted_total(query).params(query.params())
        compiled = statement.compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
        async with db.connect() as conn:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            result = await conn.exec_driver_sql("EXPLAIN " + str(compiled))
            plan = "\n".join(row[0] for row in result)
        assert "ix_search_terms_trgm" in plan, plan


@pytest.mark.parametrize("path", ["/api/products_all", "/api/products"])
def test_bad_query_parameters_never_fail(seller: ApiClient, path: str) -> None:
    response = seller.get(
        path,
        params={
            "page": "99999999999999999999",
            "limit": "1e3",
            "sort": "",
            "order": "",
            "view_mode": "",
            "search": "%_\\'\";--",
        },
    )
    assert response.status_code == 200, response.text


async def test_lists_on_generic_plans_leave_the_connection_setting_alone(db: Database) -> None:
    """Lists without a search run on generic plans set for their own transaction only; the
    connection keeps force_custom_plan (services/products/app.py) afterwards, and a list that
    fails takes its connection out of the pool instead of leaving it mid-transaction."""
    query = ProductQuery(view_mode="all", sort="price", order="desc")
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(
            text(
                "INSERT INTO products.items (barcode, name, price)"
                " VALUES (:barcode, 'generic plan', 1)"
            ),
            {"barcode": unique("gp")[:20]},
        )
        await conn.execute(text("SET plan_cache_mode = force_custom_plan"))
        data, total = await repository.list_page(conn, query, limit=1, offset=0, tz="UTC")
        assert total >= 1 and data.startswith('[{"id":')
        setting = await conn.scalar(text("SELECT current_setting('plan_cache_mode')"))
        assert setting == "force_custom_plan"
        plans = (
            await conn.execute(
                text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE statement LIKE '%string_agg%'"
                )
            )
        ).one()
        assert tuple(plans) == (1, 0)
        with pytest.raises(DBAPIError, match="time zone"):
            await repository.list_page(conn, query, limit=1, offset=0, tz="Nowhere/Nothing")
        assert conn.invalidated


def test_search_answers_follow_every_change_to_what_matches(
    seller: ApiClient, admin: ApiClient
) -> None:
    """The service reuses a search's answer (search_cache.py) only while nothing that decides
    which products match, or their order by name, has changed: each change below must show in
    the very next search, and the rows themselves are always current."""
    tag = unique("sc")[:12]
    a, b, c = tagged(admin, tag, [{}, {}, {}])

    def search(path: str = "/api/products") -> tuple[list[int], int]:
        body = seller.get(path, params={"search": tag}).json()
        return [p["id"] for p in body["data"]], body["total"]

    assert search() == search() == ([a["id"], b["id"], c["id"]], 3)
    assert admin.put(f"/api/products/{b['id']}", json={"name": "renamed"}).status_code == 200
    assert search() == ([a["id"], c["id"]], 2)
    first = create_product(admin, name=f"{tag}0")
    assert search() == ([first["id"], a["id"], c["id"]], 3)
    assert admin.delete(f"/api/products/{a['id']}").status_code == 200
    assert search() == ([first["id"], c["id"]], 2)
    assert search("/api/products_all") == ([first["id"], a["id"], c["id"]], 3)
    assert admin.post(f"/api/products/{a['id']}/activate").status_code == 200
    assert search() == ([first["id"], a["id"], c["id"]], 3)
    # A barcode and a description can make a product match too.
    by_barcode = create_product(admin, barcode=f"{tag}bc", name="zz barcode")
    assert search() == ([first["id"], a["id"], c["id"], by_barcode["id"]], 4)
    assert admin.put(f"/api/products/{by_barcode['id']}", json={"barcode": "x" + tag[1:]})
    assert search() == ([first["id"], a["id"], c["id"]], 3)
    by_text = create_product(admin, name="zz description", description="-")
    admin.put(f"/api/products/{by_text['id']}", json={"description": f"about {tag}"})
    assert search("/api/products_all")[0][-1] == by_text["id"]
    # Stock changes keep the answer, and the page shows the current stock.
    assert admin.put(f"/api/products/{c['id']}", json={"quantity": 77}).status_code == 200
    rows = seller.get("/api/products", params={"search": tag}).json()["data"]
    assert [p["stock"] for p in rows if p["id"] == c["id"]] == [77]


async def test_search_version_moves_with_names_not_with_stock(db: Database) -> None:
    """products_0008: every statement that can change what a search finds bumps the version
    (inserts, name/barcode/description/status updates, deletes); stock changes do not."""

    async def version() -> int:
        async with db.engine.connect() as conn:
            value = await conn.scalar(text("SELECT version FROM products.search_version"))
        return int(value)

    async def run(sql: str, **values: Any) -> Any:
        async with db.transaction() as conn:
            result = await conn.execute(text(sql), values)
            return result.scalar() if result.returns_rows else None

    seen = [await version()]

    async def moved() -> bool:
        """Whether the version changed since the last look (a new random value each bump)."""
        seen.append(await version())
        return seen[-1] != seen[-2]

    item = await run(
        "INSERT INTO products.items (barcode, name, price) VALUES (:b, 'version', 1) RETURNING id",
        b=unique("sv")[:20],
    )
    assert await moved()
    async with db.transaction() as conn:
        await apply_stock_movements(conn, StockMovements({item: 5}, "bulk_stock", None, None, None))
    await run("UPDATE products.items SET price = 2, min_quantity = 1 WHERE id = :i", i=item)
    assert not await moved()
    for column in ("name", "barcode", "description", "status"):
        await run(f"UPDATE products.items SET {column} = {column} WHERE id = :i", i=item)
        assert await moved(), column
    await run("DELETE FROM products.stock_movements WHERE item_id = :i", i=item)
    await run("DELETE FROM products.items WHERE id = :i", i=item)
    assert await moved()
    assert len(set(seen)) == len(seen) - 1  # never an earlier value again


async def test_list_totals_are_the_counts_of_their_lists(db: Database) -> None:
    """products_0009: after writes of every kind (inserts, stock changes across the stock
    classes, threshold and status changes, deletes), each list's total from the writers'
    counts is the count of its products, before and after folding the counts."""

    async def run(sql: str, **values: Any) -> list[Any]:
        async with db.transaction() as conn:
            result = await conn.execute(text(sql), values)
            return list(result.scalars()) if result.returns_rows else []

    prefix = unique("lc")[:10]
    made = await run(
        "INSERT INTO products.items (barcode, name, quantity, min_quantity, price, status)"
        " SELECT :p || g, 'count ' || g, g % 7, 3, 1, (g % 5 > 0)::int"
        " FROM generate_series(1, 40) AS g RETURNING id",
        p=prefix,
    )
    async with db.transaction() as conn:  # all low (1 <= 3), then in (6, 11) or out (0)
        await conn.execute(
            text("UPDATE products.items SET quantity = 1 WHERE id = ANY(:ids)"), {"ids": made}
        )
        deltas = {item: (5, -1, 10)[index % 3] for index, item in enumerate(made[:30])}
        await apply_stock_movements(conn, StockMovements(deltas, "bulk_stock", None, None, None))
    await run("UPDATE products.items SET min_quantity = 20 WHERE id = ANY(:ids)", ids=made[:8])
    await run("UPDATE products.items SET status = 1 - status WHERE id = ANY(:ids)", ids=made[5:15])
    await run("DELETE FROM products.stock_movements WHERE item_id = ANY(:ids)", ids=made[-4:])
    await run("DELETE FROM products.items WHERE id = ANY(:ids)", ids=made[-4:])

    async def totals() -> list[tuple[Any, ...]]:
        found = []
        for view_mode in repository.VIEW_MODES:
            for active_only in (False, True):
                query = ProductQuery(view_mode=view_mode, active_only=active_only)
                counted = repository.counted_total(query).scalar_subquery()
                kept = repository.list_total(query.shape)
                async with db.engine.connect() as conn:
                    row = (await conn.execute(select(kept, counted))).one()
                found.append((view_mode, active_only, *row))
        return found

    for view_mode, active_only, kept, counted in await totals():
        assert kept == counted, (view_mode, active_only)
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await repository.compact_list_counts(conn)
        rows = await conn.scalar(text("SELECT count(*) FROM products.list_counts"))
    assert rows <= 6  # one per (status, stock class)
    for view_mode, active_only, kept, counted in await totals():
        assert kept == counted, (view_mode, active_only)
