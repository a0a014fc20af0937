"""CSV import (all or nothing / skip invalid, upsert by barcode) and export, via the gateway."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import text

from stockmanager.db import Database
from tests.products.conftest import create_product, error_of, find_by_barcode
from tests.support.stack import ApiClient, unique

CSV = {"content-type": "text/csv"}
EXPORT_HEADER = [
    "id",
    "barcode",
    "name",
    "description",
    "quantity",
    "min_quantity",
    "price",
    "status",
    "expiration_date",
    "created_at",
    "updated_at",
]


def total_for(client: ApiClient, search: str) -> int:
    total: int = client.get("/api/products_all", params={"search": search}).json()["total"]
    return total


def thousand_rows_with_three_bad(tag: str) -> str:
    lines = ["barcode,name,quantity,price,description,min_quantity,expiration_date"]
    for i in range(1000):
        lines.append(f"{tag}{i:04d},{tag}{i:04d},{i % 50},{i}.25,fila {i},3,2030-01-01")
    lines.insert(101, f"{tag}x001,{tag}x001,-4,1,,,")  # line 102: bad quantity
    lines.insert(501, f"{tag}x002,{'n' * 26},1,1,,,")  # line 502: name too long
    lines.append(f"{tag}x003,{tag}x003,1,1,,,2030-02-31")  # line 1004: not a date
    return "\n".join(lines) + "\n"


def test_import_with_invalid_rows_reports_them_and_writes_nothing(admin: ApiClient) -> None:
    tag = unique("im")[:12]
    response = admin.post(
        "/api/products/import", content=thousand_rows_with_three_bad(tag), headers=CSV
    )
    body = error_of(response, 400, "El archivo contiene filas inválidas; no se importó nada")
    assert body["invalid_rows"] == 3
    assert body["errors"] == [
        {"row": 102, "barcode": f"{tag}x001", "error": "Cantidad: El valor mínimo es 0"},
        {"row": 502, "barcode": f"{tag}x002", "error": "Nombre: Máximo 25 caracteres (tiene 26)"},
        {
            "row": 1004,
            "barcode": f"{tag}x003",
            "error": "Fecha de expiración: Formato inválido (use AAAA-MM-DD)",
        },
    ]
    assert total_for(admin, tag) == 0


@pytest.mark.parametrize(
    ("bad_cell", "expected"),
    [
        ("-4", "El archivo contiene filas inválidas; no se importó nada"),  # an invalid row
        ("9" * (128 * 1024 + 1), "El archivo CSV no es válido"),  # over the csv module's limit
    ],
)
def test_a_file_refused_after_its_first_rows_were_written_writes_nothing(
    admin: ApiClient, bad_cell: str, expected: str
) -> None:
    # More rows than the import writes per chunk (importer.CHUNK_ROWS): the first chunk is in
    # the database when the bad row is read.
    tag = unique("ck")[:12]
    lines = ["barcode,name,quantity,price"]
    lines += [f"{tag}{i:05d},{tag}{i:05d},{i % 50},1.5" for i in range(6000)]
    lines.insert(5800, f"{tag}bad,{tag}bad,{bad_cell},1")
    response = admin.post("/api/products/import", content="\n".join(lines) + "\n", headers=CSV)
    error_of(response, 400, expected)
    assert total_for(admin, tag) == 0


async def test_import_skipping_invalid_rows_writes_the_good_ones(
    admin: ApiClient, db: Database
) -> None:
    tag = unique("is")[:12]
    response = admin.post(
        "/api/products/import",
        params={"skip_invalid": "1"},
        content=thousand_rows_with_three_bad(tag),
        headers=CSV,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("message", "created", "updated", "unchanged", "skipped")} == {
        "message": "Importación completada",
        "created": 1000,
        "updated": 0,
        "unchanged": 0,
        "skipped": 3,
    }
    assert [error["row"] for error in body["errors"]] == [102, 502, 1004]
    assert total_for(admin, tag) == 1000
    product = find_by_barcode(admin, f"{tag}0007")
    assert {
        k: product[k]
        for k in ("name", "stock", "min_stock", "price", "status", "description", "expiration_date")
    } == {
        "name": f"{tag}0007",
        "stock": 7,
        "min_stock": 3,
        "price": 7.25,
        "status": 1,
        "description": "fila 7",
        "expiration_date": "2030-01-01",
    }
    movements = admin.get(f"/api/products/{product['id']}/movements").json()["data"]
    assert [(m["reason"], m["delta"], m["quantity_after"]) for m in movements] == [("import", 7, 7)]
    async with db.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT payload->'data' FROM products.outbox WHERE type = 'product.imported'"
                    " AND payload->>'request_id' = :rid"
                ),
                {"rid": response.headers["x-request-id"]},
            )
        ).scalar_one()
    assert counts == {"created": 1000, "updated": 0, "skipped": 3}


def test_import_upserts_by_barcode(admin: ApiClient) -> None:
    existing = create_product(admin, quantity=10, min_quantity=4, price=5, description="vieja")
    admin.delete(f"/api/products/{existing['id']}")
    same = create_product(admin, quantity=3, price=2)
    new_code = unique("nw")[:20]
    content = (
        "name,barcode,price,quantity,description,min_quantity,expiration_date,status,id\n"
        f"Renombrado,{existing['barcode']},6.5,12,,,,1,999\n"
        f"{same['name']},{same['barcode']},2,3,,,,,\n"
        f"Nuevo,{new_code},1,0,,,,,\n"
    )
    response = admin.post("/api/products/import", content=content, headers=CSV)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"], body["skipped"]) == (1, 1, 1, 0)
    after = admin.get(f"/api/products/{existing['id']}").json()
    # Given values replace, empty optional cells keep the stored value, status is kept.
    assert {
        k: after[k] for k in ("name", "price", "stock", "description", "min_stock", "status")
    } == {
        "name": "Renombrado",
        "price": 6.5,
        "stock": 12,
        "description": "vieja",
        "min_stock": 4,
        "status": 0,
    }
    movements = admin.get(f"/api/products/{existing['id']}/movements").json()["data"]
    assert (movements[0]["reason"], movements[0]["delta"]) == ("import", 2)
    created = find_by_barcode(admin, new_code)
    assert (created["name"], created["stock"], created["min_stock"], created["description"]) == (
        "Nuevo",
        0,
        5,
        "",
    )


async def test_import_announces_each_product_it_takes_to_its_minimum(
    admin: ApiClient, db: Database
) -> None:
    dropping = create_product(admin, quantity=10, min_quantity=4)
    raised_min = create_product(admin, quantity=10, min_quantity=2)
    already_low = create_product(admin, quantity=2, min_quantity=5)
    disabled = create_product(admin, quantity=10, min_quantity=4)
    admin.delete(f"/api/products/{disabled['id']}")
    content = (
        "barcode,name,quantity,price,min_quantity\n"
        f"{dropping['barcode']},{dropping['name']},3,1,\n"  # 10 -> 3, minimum 4
        f"{raised_min['barcode']},Otro nombre,5,1,6\n"  # 10 -> 5, minimum 2 -> 6
        f"{already_low['barcode']},{already_low['name']},1,1,\n"  # was low already
        f"{disabled['barcode']},{disabled['name']},0,1,\n"  # not active
    )
    response = admin.post("/api/products/import", content=content, headers=CSV)
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 4
    async with db.connect() as conn:
        announced = (
            await conn.execute(
                text(
                    "SELECT payload->'data' FROM products.outbox WHERE type = 'product.stock_low'"
                    " AND payload->>'request_id' = :rid"
                    " ORDER BY (payload->'data'->>'item_id')::bigint"
                ),
                {"rid": response.headers["x-request-id"]},
            )
        ).scalars()
        assert [
            (data["item_id"], data["name"], data["quantity"], data["min_quantity"])
            for data in announced
        ] == [
            (dropping["id"], dropping["name"], 3, 4),
            (raised_min["id"], "Otro nombre", 5, 6),
        ]


def test_import_multipart_semicolons_decimal_comma_and_windows_1252(admin: ApiClient) -> None:
    code = unique("mp")[:20]
    content = f"Barcode;Name;Quantity;Price\r\n{code};Café con leche;3;1234,50\r\n"
    response = admin.post(
        "/api/products/import",
        files={"file": ("productos.csv", content.encode("cp1252"), "text/csv")},
    )
    assert response.status_code == 200, response.text
    product = find_by_barcode(admin, code)
    assert (product["name"], product["price"], product["stock"]) == ("Café con leche", 1234.5, 3)


def test_import_file_level_errors(admin: ApiClient) -> None:
    post = admin.post
    error_of(
        post("/api/products/import", content=b"", headers=CSV), 400, "El archivo CSV está vacío"
    )
    error_of(
        post("/api/products/import", content=b"barcode,name,quantity\n1,a,1\n", headers=CSV),
        400,
        "Faltan columnas requeridas: price",
    )
    error_of(
        post("/api/products/import", content=b"barcode,name,quantity,price,name\n", headers=CSV),
        400,
        "Columna repetida: name",
    )
    error_of(post("/api/products/import", json={"products": []}), 415)
    error_of(
        post(
            "/api/products/import",
            files={"other": ("x.txt", b"a", "text/plain")},
            data={"note": "x"},
        ),
        400,
    )
    header_only = post(
        "/api/products/import", content=b"barcode,name,quantity,price\n", headers=CSV
    )
    assert header_only.status_code == 200
    assert header_only.json()["created"] == 0


def test_import_row_errors(admin: ApiClient) -> None:
    code = unique("re")[:16]
    content = (
        "barcode,name,quantity,price\n"
        f"{code}a,Uno,1,1\n"
        f"{code}a,Dos,1,1\n"
        f",Tres,1,1\n"
        f"{code}b,Cuatro,1,1,extra\n"
        f"{code}c,Cinco,1,gratis\n"
        "\n"
        f"{code}d,Seis,2.5,1\n"
    )
    body = error_of(admin.post("/api/products/import", content=content, headers=CSV), 400)
    assert body["errors"] == [
        {
            "row": 3,
            "barcode": f"{code}a",
            "error": "Código de barras: Repetido en el archivo (fila 2)",
        },
        {"row": 4, "barcode": None, "error": "Código de barras: El campo es obligatorio"},
        {"row": 5, "barcode": f"{code}b", "error": "La fila tiene más columnas que el encabezado"},
        {"row": 6, "barcode": f"{code}c", "error": "Precio: Debe ser un número"},
        {"row": 8, "barcode": f"{code}d", "error": "Cantidad: Debe ser un número entero"},
    ]
    assert total_for(admin, code) == 0


def parse_csv(content: str) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(content)))


def test_export_returns_the_filtered_list_as_csv(admin: ApiClient) -> None:
    tag = unique("ex")[:12]
    low = create_product(admin, name=f"{tag} bajo", quantity=2, min_quantity=5, price=3)
    create_product(admin, name=f"{tag} lleno", quantity=50, min_quantity=5)
    formula = create_product(
        admin,
        name=f"=1+1 {tag}",
        quantity=1,
        min_quantity=5,
        price=10.5,
        description="-peligro",
        expiration_date="2030-12-31",
    )
    response = admin.get(
        "/api/products/export",
        params={"search": tag, "view_mode": "low_stock", "sort": "price", "order": "desc"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="stockly_productos_')
    assert disposition.endswith('.csv"')
    rows = parse_csv(response.text)
    assert list(rows[0]) == EXPORT_HEADER
    assert [int(row["id"]) for row in rows] == [formula["id"], low["id"]]
    assert rows[0] == {
        "id": str(formula["id"]),
        "barcode": formula["barcode"],
        "name": f"'=1+1 {tag}",  # spreadsheet formula neutralised
        "description": "'-peligro",
        "quantity": "1",
        "min_quantity": "5",
        "price": "10.50",
        "status": "1",
        "expiration_date": "2030-12-31",
        "created_at": formula["created_at"],
        "updated_at": formula["updated_at"],
    }
    # The same filters as products_all.
    listed = admin.get(
        "/api/products_all",
        params={"search": tag, "view_mode": "low_stock", "sort": "price", "order": "desc"},
    ).json()
    assert [p["id"] for p in listed["data"]] == [int(row["id"]) for row in rows]
    # An export imports back unchanged (the apostrophe is removed again).
    again = admin.post("/api/products/import", content=response.content, headers=CSV)
    assert again.status_code == 200, again.text
    assert (again.json()["unchanged"], again.json()["updated"]) == (2, 0)
    assert admin.get(f"/api/products/{formula['id']}").json()["name"] == f"=1+1 {tag}"


def test_export_of_nothing_is_just_the_header(admin: ApiClient) -> None:
    response = admin.get("/api/products/export", params={"search": unique("none")})
    assert response.status_code == 200
    assert response.text == (
        "id,barcode,name,description,quantity,min_quantity,price,status,"
        "expiration_date,created_at,updated_at\r\n"
    )


def test_export_writes_what_the_csv_module_writes(admin: ApiClient) -> None:
    """Rows are built by PostgreSQL: quoting (commas, quotes, line breaks), formula protection,
    empty and missing cells, money and times byte for byte as Python's `csv` module writes."""
    tag = unique("cq")[:12]
    tricky = [
        create_product(admin, name=f'Dicho "{tag}"', description="uno, dos\r\ny tres"),
        create_product(admin, name=f"+{tag}", description="", expiration_date=None, price=7),
        create_product(admin, name=f"@{tag},x", description='=HYPERLINK("a")', price=0.5),
        create_product(admin, name=f"{tag} normal", description="\ttab", quantity=0),
    ]
    response = admin.get("/api/products/export", params={"search": tag, "sort": "price"})
    assert response.status_code == 200

    def safe(value: str) -> str:
        return "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value

    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    for product in sorted(tricky, key=lambda p: (p["price"], p["id"])):
        writer.writerow(
            [
                product["id"],
                safe(product["barcode"]),
                safe(product["name"]),
                safe(product["description"]),
                product["stock"],
                product["min_stock"],
                f"{product['price']:.2f}",
                product["status"],
                product["expiration_date"] or "",
                product["created_at"],
                product["updated_at"],
            ]
        )
    assert response.text == expected.getvalue()
    # ... and the import reads every one of them back unchanged.
    again = admin.post("/api/products/import", content=response.content, headers=CSV)
    assert again.status_code == 200, again.text
    assert again.json()["unchanged"] == len(tricky)


def test_imported_text_is_stored_exactly(admin: ApiClient, seller: ApiClient) -> None:
    """The import sends its rows to PostgreSQL in COPY's text format (repository_import.copy_text):
    tabs, line breaks, backslashes and COPY's own markers in a cell arrive as written."""
    tag = unique("cp")[:10]
    descriptions = {
        f"{tag}1": "tab\there",
        f"{tag}2": "back\\slash \\N \\. end",
        f"{tag}3": "two\nlines\r\nand a CR\rhere",
        f"{tag}4": "\\N",
        f"{tag}5": "ünïcödé \x1f ✓",
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["barcode", "name", "quantity", "price", "description"])
    for barcode, description in descriptions.items():
        writer.writerow([barcode, f"n\\{barcode}", 1, "1.00", description])
    response = admin.post("/api/products/import", content=out.getvalue(), headers=CSV)
    assert response.status_code == 200 and response.json()["created"] == 5, response.text
    for barcode, description in descriptions.items():
        stored = find_by_barcode(seller, barcode)
        assert (stored["name"], stored["description"]) == (f"n\\{barcode}", description)
