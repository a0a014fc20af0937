"""An isolated stack for fuzzing: its own database and its own Redis.

Schemathesis sends thousands of random (often valid) writes as root: new users, settings, price
changes, failed logins. None of that may reach the data, rate-limit counters or event streams the
other tests share, so the fuzzer gets a database of its own in the same PostgreSQL server and a
Redis server of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.support.http_server import local_http_server
from tests.support.isolated import isolated_backends
from tests.support.stack import Stack, start_stack


class ProductCatalogue(BaseHTTPRequestHandler):
    """A local stand-in for OpenFoodFacts (the fuzzer must not reach the internet): a barcode
    ending in an even digit is a known product, any other is not found."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        barcode = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        if barcode[-1:] in "02468" and barcode:
            status, body = 200, {"status": 1, "product": {"product_name": "Yerba", "brands": "X"}}
        else:
            status, body = 404, {"status": 0, "status_verbose": "product not found"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="session")
def product_catalogue() -> Iterator[str]:
    with local_http_server(ProductCatalogue) as url:
        yield url


@pytest.fixture(scope="session")
def fuzz_stack(migrated: str, data_root: Path, product_catalogue: str) -> Iterator[Stack]:
    log_dir = data_root / "fuzz"
    log_dir.mkdir(exist_ok=True)
    with (
        isolated_backends(migrated, data_root, "fuzz") as (database_url, redis_url),
        start_stack(
            database_url=database_url,
            redis_url=redis_url,
            log_dir=log_dir,
            extra_env={"STOCKMANAGER_OPENFOODFACTS_URL": product_catalogue},
        ) as stack,
    ):
        yield stack
