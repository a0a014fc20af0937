"""Check a real response against what a service's OpenAPI document says about it.

Used by the contract tests of the audit, notifications and metrics services: the document is
built from the service's own router (the same definitions the service runs), and a response
must have a documented status, a documented content type and, for JSON, a body that validates
against the documented schema (`$ref`s resolved in the document's components). That is what
schemathesis checks later through the gateway; here it runs on chosen, meaningful data.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from jsonschema import Draft202012Validator

_DOCUMENTS: dict[int, dict[str, Any]] = {}


def _document(router: APIRouter) -> dict[str, Any]:
    document = _DOCUMENTS.get(id(router))
    if document is None:
        app = FastAPI()
        app.include_router(router)
        document = _DOCUMENTS[id(router)] = app.openapi()
    return document


def documented_response(router: APIRouter, method: str, path: str, status: int) -> dict[str, Any]:
    """The OpenAPI response object of `method path` (the router's path template) for `status`."""
    operation = _document(router)["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path}: {status} not documented ({list(responses)})"
    response: dict[str, Any] = responses[str(status)]
    return response


def assert_documented(
    router: APIRouter, method: str, path: str, response: httpx.Response, body: Any = None
) -> Any:
    """Assert `response` is what the document promises; returns the decoded JSON body.

    `body` replaces the response's own for content that is not read in one piece (a stream).
    """
    documented = documented_response(router, method, path, response.status_code)
    media = response.headers["content-type"].split(";", 1)[0].strip()
    content = documented.get("content", {})
    assert media in content, f"{method} {path}: {media} not documented ({list(content)})"
    if media != "application/json":
        return body
    data = response.json() if body is None else body
    schema = {**content[media]["schema"], "components": _document(router).get("components", {})}
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{method} {path} {response.status_code}: {list(e.path)}: {e.message}" for e in errors[:10]
    )
    return data


def assert_matches_model(schema_owner: Any, data: Any) -> None:
    """Validate `data` against a Pydantic model's serialization JSON schema (for payloads that
    are not a whole response, e.g. the `data` of a Server-Sent Event)."""
    schema = schema_owner.model_json_schema(mode="serialization")
    errors = list(Draft202012Validator(schema).iter_errors(data))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
