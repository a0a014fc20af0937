"""GET /api/sales, /api/sales/<id>, /api/sales/<id>/edit through the gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text

from stockmanager.db import Database
from tests.sales.support import Account, assert_error, create_account, create_products
from tests.support.stack import Stack, unique

BUSINESS_TZ = ZoneInfo("America/Argentina/Buenos_Aires")


def sell(account: Account, *lines: tuple[int, int], method: str | None = None) -> int:
    payload: dict = {"items": [{"item_id": i, "quantity": q} for i, q in lines]}
    if method is not None:
        payload["payment_method"] = method
    response = account.client.post("/api/sales/bulk", json=payload)
    assert response.status_code == 201, response.text
    return int(response.json()["sale_id"])


async def backdate(db: Database, sale_id: int, when: datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            text("UPDATE sales.sales SET created_at = :t WHERE id = :id"),
            {"t": when, "id": sale_id},
        )


async def test_list_detail_and_edit_view_shapes(stack: Stack, db: Database, admin: Account) -> None:
    seller = create_account(stack)
    p1, p2 = unique("Uno"), unique("Dos")
    a, b = await create_products(
        db, {"name": p1, "price": "0.10", "quantity": 9}, {"name": p2, "price": "0.20"}
    )
    sale_id = sell(seller, (a, 1), (b, 1), method="Tarjeta")
    async with db.connect() as conn:
        created = await conn.scalar(
            text("SELECT created_at FROM sales.sales WHERE id = :id"), {"id": sale_id}
        )
    date = created.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S")

    listing = admin.client.get("/api/sales", params={"vendedor": seller.username}).json()
    summary = {
        "id": sale_id,
        "date": date,
        "products": [
            {"name": p1, "quantity": 1, "price": 0.1},
            {"name": p2, "quantity": 1, "price": 0.2},
        ],
        "total_quantity": 2,
        "total": 0.3,  # 0.1 + 0.2 exactly, rounded to 2 decimals
        "vendedor": seller.username,
        "vendor_id": seller.id,
        "payment_method": "Tarjeta",
    }
    assert listing == {"data": [summary], "total": 1, "page": 1, "pages": 1, "limit": 10}

    detail = seller.client.get(f"/api/sales/{sale_id}").json()
    expected_detail = dict(summary)
    del expected_detail["total_quantity"]
    assert detail == expected_detail

    view = admin.client.get(f"/api/sales/{sale_id}/edit").json()
    assert view == {
        "id": sale_id,
        "date": date,
        "vendor_id": seller.id,
        "vendedor": seller.username,
        "payment_method": "Tarjeta",
        "items": [
            {"item_id": a, "quantity": 1, "price": 0.1, "name": p1},
            {"item_id": b, "quantity": 1, "price": 0.2, "name": p2},
        ],
    }


async def test_not_found_messages(stack: Stack, admin: Account) -> None:
    missing = 9_000_000_000_000
    assert_error(admin.client.get(f"/api/sales/{missing}"), 404, "Sale not found")
    assert_error(admin.client.get(f"/api/sales/{missing}/edit"), 404, "Venta no encontrada")


async def test_roles(stack: Stack, db: Database, seller: Account) -> None:
    (a,) = await create_products(db, {"quantity": 5})
    sale_id = sell(seller, (a, 1))
    with stack.client() as anonymous:
        for path in ("/api/sales", f"/api/sales/{sale_id}", f"/api/sales/{sale_id}/edit"):
            assert_error(anonymous.get(path), 401, "No autenticado")
        assert_error(anonymous.put(f"/api/sales/{sale_id}", json={"items": []}), 401)
    assert_error(seller.client.get(f"/api/sales/{sale_id}/edit"), 403, "Permiso denegado")
    assert_error(
        seller.client.put(f"/api/sales/{sale_id}", json={"items": [{"item_id": a, "quantity": 2}]}),
        403,
        "Permiso denegado",
    )


async def test_sellers_see_only_their_own_sales(stack: Stack, db: Database, admin: Account) -> None:
    mine, theirs = create_account(stack), create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    my_sale, their_sale = sell(mine, (a, 1)), sell(theirs, (a, 1))

    own = mine.client.get("/api/sales", params={"limit": 100}).json()
    assert [s["id"] for s in own["data"]] == [my_sale] and own["total"] == 1
    assert mine.client.get("/api/sales", params={"vendedor": theirs.username}).json()["total"] == 0
    assert_error(mine.client.get(f"/api/sales/{their_sale}"), 404, "Sale not found")
    assert mine.client.get(f"/api/sales/{my_sale}").status_code == 200
    # Admins (and root) see everybody's.
    assert admin.client.get(f"/api/sales/{their_sale}").json()["vendedor"] == theirs.username
    with stack.root() as root:
        assert root.get(f"/api/sales/{my_sale}").json()["vendedor"] == mine.username


async def test_date_filters_use_the_business_day(
    stack: Stack, db: Database, admin: Account
) -> None:
    seller = create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    late, next_day, later = sell(seller, (a, 1)), sell(seller, (a, 1)), sell(seller, (a, 1))
    # 02:30 UTC on the 10th is still the 9th in Buenos Aires (UTC-3).
    await backdate(db, late, datetime(2020, 1, 10, 2, 30, tzinfo=UTC))
    await backdate(db, next_day, datetime(2020, 1, 10, 12, 0, tzinfo=UTC))
    await backdate(db, later, datetime(2020, 1, 12, 12, 0, tzinfo=UTC))

    def ids(**params: str) -> list[int]:
        body = admin.client.get("/api/sales", params={"vendedor": seller.username, **params})
        assert body.status_code == 200, body.text
        return [s["id"] for s in body.json()["data"]]

    assert ids() == [later, next_day, late]  # date DESC
    assert ids(**{"from": "2020-01-10"}) == [later, next_day]
    assert ids(to="2020-01-09") == [late]
    assert ids(**{"from": "2020-01-10", "to": "2020-01-10"}) == [next_day]
    assert ids(**{"from": "2020-01-10T09:00:00", "to": "2020-01-10T09:00:00"}) == [next_day]
    assert ids(**{"from": "", "to": ""}) == [later, next_day, late]
    assert admin.client.get(f"/api/sales/{late}").json()["date"] == "2020-01-09 23:30:00"
    for bad in ("2020-13-01", "yesterday", "2020/01/01"):
        assert_error(admin.client.get("/api/sales", params={"from": bad}), 400)
        assert_error(admin.client.get("/api/sales", params={"to": bad}), 400)


async def test_ties_on_date_are_ordered_by_id_desc(
    stack: Stack, db: Database, admin: Account
) -> None:
    seller = create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    first, second = sell(seller, (a, 1)), sell(seller, (a, 1))
    same = datetime(2021, 5, 5, 15, 0, tzinfo=UTC)
    await backdate(db, first, same)
    await backdate(db, second, same)
    data = admin.client.get("/api/sales", params={"vendedor": seller.username}).json()["data"]
    assert [s["id"] for s in data] == [second, first]


async def test_product_and_seller_filters(stack: Stack, db: Database, admin: Account) -> None:
    seller = create_account(stack)
    tag = unique("")[:6]
    nandu, percent, plain = await create_products(
        db,
        {"name": f"Ñandú {tag}"},
        {"name": f"50%_off {tag}"},
        {"name": f"50xxoff {tag}"},
    )
    s_nandu, s_percent, s_plain = (
        sell(seller, (nandu, 1)),
        sell(seller, (percent, 1)),
        sell(seller, (plain, 1)),
    )

    def ids(**params: str) -> list[int]:
        body = admin.client.get("/api/sales", params=params).json()
        return sorted(s["id"] for s in body["data"])

    assert ids(product=f"ñANDÚ {tag}") == [s_nandu]
    # % and _ are literal characters, not wildcards.
    assert ids(product=f"%_off {tag}") == [s_percent]
    assert ids(product=tag, vendedor=seller.username.upper()) == sorted(
        [s_nandu, s_percent, s_plain]
    )
    assert ids(product=tag, vendedor=seller.email) == sorted([s_nandu, s_percent, s_plain])
    assert ids(product=tag, vendedor="nobody-matches-this") == []


async def test_pagination(stack: Stack, db: Database, admin: Account) -> None:
    seller = create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    sales = [sell(seller, (a, 1)) for _ in range(3)]

    def page(**params: str) -> dict:
        return admin.client.get("/api/sales", params={"vendedor": seller.username, **params}).json()

    body = page(limit="2", page="2")
    assert (body["total"], body["page"], body["pages"], body["limit"]) == (3, 2, 2, 2)
    assert [s["id"] for s in body["data"]] == [sales[0]]
    assert page(limit="2", page="9")["data"] == []
    fallback = page(limit="abc", page="-3")
    assert (fallback["page"], fallback["limit"], len(fallback["data"])) == (1, 10, 3)
    assert page(limit="1000")["limit"] == 100
    assert page(limit="0")["limit"] == 1
    empty = page(product="no-such-product-anywhere")
    assert empty == {"data": [], "total": 0, "page": 1, "pages": 1, "limit": 10}


async def test_published_views_for_metrics(stack: Stack, db: Database) -> None:
    seller = create_account(stack)
    name = unique("Vista")
    (a,) = await create_products(db, {"name": name, "price": "2.50", "quantity": 9})
    sale_id = sell(seller, (a, 3), method="QR")
    async with db.connect() as conn:
        header = (
            await conn.execute(
                text(
                    "SELECT id, sold_at, vendor_id, vendor_username, payment_method"
                    " FROM sales.sales_v WHERE id = :id"
                ),
                {"id": sale_id},
            )
        ).one()
        lines = (
            await conn.execute(
                text(
                    "SELECT sale_id, sold_at, vendor_id, vendor_username, payment_method,"
                    " item_id, item_name, quantity, unit_price"
                    " FROM sales.sale_lines_v WHERE sale_id = :id"
                ),
                {"id": sale_id},
            )
        ).all()
    assert (header.vendor_id, header.vendor_username, header.payment_method) == (
        seller.id,
        seller.username,
        "QR",
    )
    assert [tuple(row) for row in lines] == [
        (sale_id, header.sold_at, seller.id, seller.username, "QR", a, name, 3, Decimal("2.50"))
    ]
