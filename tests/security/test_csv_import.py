"""A CSV the csv module itself rejects (`csv.Error`) is a 400 JSON error that writes nothing.

The issue found `POST /api/products/import` answering 500 for such files. An attacker with an
admin session (or a confused one) must get a clear error, and the catalogue must be unchanged.
"""

from __future__ import annotations

from tests.support.stack import Stack, unique

CSV = {"content-type": "text/csv"}


def test_csv_error_is_a_json_400_and_imports_nothing(stack: Stack) -> None:
    barcode = unique("9")[:12]
    # A quoted field longer than the csv module's field limit (131072 characters).
    content = (
        f"barcode,name,quantity,price\n{barcode},Valido,1,1\n".encode()
        + b'"'
        + b"x" * 200_000
        + b'",n,1,1\n'
    )
    with stack.root() as root:
        for params in ({}, {"skip_invalid": "1"}):
            response = root.post(
                "/api/products/import", params=params, content=content, headers=CSV
            )
            assert response.status_code == 400, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["code"] == "validation_error"
            assert response.json()["error"].startswith("El archivo CSV no es válido")
        found = root.get("/api/products_all", params={"search": barcode}).json()
    assert found["total"] == 0  # the valid row before the bad one was not imported either
