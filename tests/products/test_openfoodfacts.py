"""`/api/products/info/<barcode>` against a local server that answers like OpenFoodFacts.

The shared stack's products service points at the real OpenFoodFacts, so these tests start one
more products process of their own, configured with the fake server's URL and a 1 s timeout,
and call it directly with a gateway-signed identity (the gateway itself only forwards).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from stockmanager.embedded import free_port
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity
from stockmanager.supervisor import Supervisor
from tests.products.conftest import error_of
from tests.support.http_server import local_http_server
from tests.support.stack import ApiClient, Stack, service_spec

TIMEOUT = 1.0
FOUND = {
    "status": 1,
    "status_verbose": "product found",
    "product": {
        "product_name": "Dulce de leche",
        "generic_name": "Dulce de leche clásico",
        "brands": "La Serenísima",
        "categories": "Untables",
        "image_url": "https://images.example/ddl.jpg",
    },
}


class FakeOpenFoodFacts(BaseHTTPRequestHandler):
    """Barcode decides the behaviour: 1xxx found, 2xxx not found, 3xxx other type (beauty),
    4xxx HTTP 503, 5xxx garbage, 6xxx slow, 7xxx found with missing fields, 8xxx other type
    (petfood, whose site refuses connections)."""

    hits: ClassVar[Counter[str]] = Counter()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path
        site = "beauty" if path.startswith("/beauty/") else "food"
        barcode = path.rsplit("/", 1)[-1].removesuffix(".json")
        self.hits[f"{site}:{barcode}"] += 1
        assert self.headers["User-Agent"] == "Stockly - Python - Version 1.0"
        kind = barcode[0]
        if site == "beauty":
            self._json(200, {"status": 1, "product": {"product_name": "Crema facial"}})
        elif kind == "1":
            self._json(200, FOUND)
        elif kind == "2":
            self._json(404, {"status": 0, "status_verbose": "product not found"})
        elif kind == "3":
            self._json(
                404,
                {
                    "status": 0,
                    "status_verbose": "product found, but of a different product type: beauty",
                },
            )
        elif kind == "4":
            self._json(503, {"error": "maintenance"})
        elif kind == "5":
            self._raw(200, b"<html>definitely not json")
        elif kind == "8":
            self._json(
                404,
                {
                    "status": 0,
                    "status_verbose": "product found, but of a different product type: petfood",
                },
            )
        elif kind == "6":
            time.sleep(TIMEOUT * 3)
            self._json(200, FOUND)
        else:
            self._json(200, {"status": 1, "product": {"product_name": None, "brands": 3}})

    def _json(self, status: int, body: object) -> None:
        self._raw(status, json.dumps(body).encode(), "application/json")

    def _raw(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the slow case: the client gave up


@pytest.fixture(scope="module")
def fake_off() -> Iterator[str]:
    with local_http_server(FakeOpenFoodFacts) as url:
        yield url


@pytest.fixture(scope="module")
def products_url(
    stack: Stack, fake_off: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = {
        **stack.env,
        "STOCKMANAGER_OPENFOODFACTS_URL": fake_off,
        "STOCKMANAGER_OPENFOODFACTS_TIMEOUT": str(TIMEOUT),
        "STOCKMANAGER_OPENFOODFACTS_SISTER_URLS": json.dumps(
            {"beauty": f"{fake_off}/beauty", "petfood": f"http://127.0.0.1:{free_port()}"}
        ),
    }
    log = Path(tmp_path_factory.mktemp("off")) / "products.log"
    with log.open("w") as out:
        supervisor = Supervisor(
            [service_spec("products", port, env, "products-off")],
            out=out,
        )
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            supervisor.stop()


@pytest.fixture
def lookup(stack: Stack, products_url: str) -> Iterator[httpx.Client]:
    def sign(request: httpx.Request) -> None:
        identity = Identity(
            user_id=1,
            username="root",
            role="root",
            request_id="off-test",
            ip="127.0.0.1",
            issued_at=time.time(),
        )
        request.headers[IDENTITY_HEADER] = sign_identity(
            identity, stack.env["STOCKMANAGER_INTERNAL_SECRET"]
        )

    with httpx.Client(base_url=products_url, timeout=10, event_hooks={"request": [sign]}) as client:
        yield client


def barcode(kind: str) -> str:
    return kind + str(time.time_ns())[-12:]


def test_found_product_is_mapped_and_cached(lookup: httpx.Client) -> None:
    code = barcode("1")
    response = lookup.get(f"/api/products/info/{code}")
    assert response.status_code == 200
    assert response.json() == {
        "barcode": code,
        "name": "Dulce de leche",
        "description": "Dulce de leche clásico",
        "brands": "La Serenísima",
        "categories": "Untables",
        "image_url": "https://images.example/ddl.jpg",
    }
    assert lookup.get(f"/api/products/info/{code}").json() == response.json()
    assert FakeOpenFoodFacts.hits[f"food:{code}"] == 1  # the second answer came from Redis


def test_missing_fields_become_empty_strings(lookup: httpx.Client) -> None:
    code = barcode("7")
    assert lookup.get(f"/api/products/info/{code}").json() == {
        "barcode": code,
        "name": "",
        "description": "",
        "brands": "",
        "categories": "",
        "image_url": "",
    }


def test_not_found_is_404_and_cached(lookup: httpx.Client) -> None:
    code = barcode("2")
    for _ in range(2):
        error_of(
            lookup.get(f"/api/products/info/{code}"), 404, "Producto no encontrado en OpenFoodFacts"
        )
    assert FakeOpenFoodFacts.hits[f"food:{code}"] == 1


def test_other_product_type_is_looked_up_on_the_sister_site(lookup: httpx.Client) -> None:
    code = barcode("3")
    response = lookup.get(f"/api/products/info/{code}")
    assert response.status_code == 200
    assert response.json()["name"] == "Crema facial"
    assert FakeOpenFoodFacts.hits[f"beauty:{code}"] == 1


def test_upstream_error_is_500_and_not_cached(lookup: httpx.Client) -> None:
    code = barcode("4")
    for _ in range(2):
        error_of(lookup.get(f"/api/products/info/{code}"), 500, "Error al consultar OpenFoodFacts")
    assert FakeOpenFoodFacts.hits[f"food:{code}"] == 2


def test_garbage_answer_is_500(lookup: httpx.Client) -> None:
    error_of(
        lookup.get(f"/api/products/info/{barcode('5')}"), 500, "Error al consultar OpenFoodFacts"
    )


def test_slow_upstream_is_502_within_the_timeout(lookup: httpx.Client) -> None:
    started = time.monotonic()
    error_of(
        lookup.get(f"/api/products/info/{barcode('6')}"),
        502,
        "No se pudo conectar con OpenFoodFacts",
    )
    assert time.monotonic() - started < TIMEOUT + 1.0


def test_refused_connection_is_502(lookup: httpx.Client) -> None:
    # The petfood sister site is configured on a port where nothing listens.
    error_of(
        lookup.get(f"/api/products/info/{barcode('8')}"),
        502,
        "No se pudo conectar con OpenFoodFacts",
    )


@pytest.mark.parametrize("bad", ["abc", "12a4", "1" * 33, "%20"])
def test_barcode_must_be_1_to_32_digits(seller: ApiClient, bad: str) -> None:
    error_of(seller.get(f"/api/products/info/{bad}"), 400, "Código de barras inválido")
