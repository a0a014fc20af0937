"""Property-based fuzzing of the whole public API, from the gateway's own OpenAPI document.

Schemathesis generates requests for every documented operation, from valid data (positive mode)
and from data the document says is invalid (negative mode), and sends them through the gateway
of an isolated stack, logged in as root. Every response must: not be a 5xx, use a status code
the document lists for that operation, have the documented content type, and match the
documented schema. Examples per operation are bounded and generation is derandomised, so the
suite stays fast and generates the same requests on every run.

One test per ROUTE_MAP operation and mode (the table is the list of what must be documented;
`tests/gateway/test_openapi.py` checks that the document lists all of it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.routes import ROUTE_MAP
from tests.support.stack import Stack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 10

# Not fuzzed: the SSE stream never ends (tests/notifications covers it), logging out would end
# the fuzzer's own session, and the docs page's assets are static files, not JSON operations.
# Login is fuzzed: failed attempts only touch this stack's own rate-limit counters.
EXCLUDED = {
    ("GET", "/api/notifications/stream"),
    ("POST", "/api/logout"),
    ("GET", "/api/docs"),
    ("GET", "/api/docs/{asset}"),
}
# Operations that could take the fuzzer's own root account away (a new password, a new role,
# disabled) are still fuzzed, but never against root's own id.
ROOT_ACCOUNT_PATH = "/api/users/{id}"

_TYPED_PARAM = re.compile(r"\{(\w+):\w+\}")


def documented_path(pattern: str) -> str:
    return _TYPED_PARAM.sub(r"{\1}", pattern)


OPERATIONS = sorted(
    {(route.method, documented_path(route.pattern)) for route in ROUTE_MAP} - EXCLUDED
)


@pytest.fixture(scope="session")
def fuzz_schema(fuzz_stack: Stack) -> Any:
    document = httpx.get(f"{fuzz_stack.base_url}/api/openapi.json", timeout=60).json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=fuzz_stack.base_url, request_timeout=30)
    return loaded


@pytest.fixture(scope="session")
def root_cookie(fuzz_stack: Stack) -> tuple[str, int]:
    """Root's session token and user id."""
    response = httpx.post(
        f"{fuzz_stack.base_url}/api/login",
        json={"username": "root", "password": fuzz_stack.root_password},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.cookies["session"], int(response.json()["user_id"])


@pytest.fixture(scope="session")
def http_session() -> Iterator[requests.Session]:
    session = requests.Session()
    yield session
    session.close()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(
    fuzz_schema: Any,
    root_cookie: tuple[str, int],
    http_session: requests.Session,
    method: str,
    path: str,
) -> None:
    operation = fuzz_schema[path][method]
    token, root_id = root_cookie
    statuses: Counter[int] = Counter()
    # Negative data needs something to break: an operation without parameters or body only
    # gets valid requests.
    has_inputs = any(
        len(group) for group in (operation.path_parameters, operation.query, operation.headers)
    ) or bool(len(operation.body))
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_inputs else [])
    for mode in modes:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            if path == ROOT_ACCOUNT_PATH and method in ("PUT", "DELETE"):
                assume(str((case.path_parameters or {}).get("id")) != str(root_id))
            # The document's cookie security scheme makes schemathesis invent a `session`
            # cookie of its own; every case is sent as root instead.
            case.cookies = {**(case.cookies or {}), "session": token}
            response = case.call_and_validate(session=http_session, checks=CHECKS)
            statuses[response.status_code] += 1

        run()
    # A fuzzer whose requests were all refused at the door would have tested nothing.
    assert set(statuses) - {401}, f"every request was refused as not logged in: {statuses}"


def test_every_operation_is_fuzzed(fuzz_schema: Any) -> None:
    """The exclusions above are the only operations the fuzzer skips."""
    documented = {
        (method.upper(), path)
        for path, item in fuzz_schema.raw_schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    }
    assert documented - EXCLUDED == set(OPERATIONS)
