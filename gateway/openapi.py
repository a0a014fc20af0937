"""GET /api/openapi.json: the OpenAPI 3.1 document of the public API.

Merged at run time from each service's own FastAPI document (`/openapi.json` on its internal
port, fetched over the proxy's keep-alive pool from a healthy replica) and the gateway's own
routes, whose bodies are the models in `gateway.schemas`. The route table decides what is
published and where:

- only paths in the table appear, under the table's path (`{id:int}` becomes `{id}`, an integer
  parameter; the service's own parameter name is replaced by the table's);
- an alias (`/api/api/settings/*`) is an operation of its own, copied from its target;
- every operation gets `x-access` and a sentence about it, the session-cookie security
  requirement unless public, a tag, and the error answers the gateway itself can give;
- component schemas that several services name alike are kept once when identical, otherwise
  prefixed with the service name (`users.Item`), with every `$ref` rewritten;
- FastAPI's automatic 422 (`HTTPValidationError`) is left out: every service answers request
  validation failures with upstream's 400 (`stockmanager.contracts.validation.translate`).

The merged document is cached per gateway process for `CACHE_TTL` seconds. When a service
cannot be reached the answer is 503 with `Retry-After`, never a partial document.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import orjson
from starlette.responses import Response

from gateway.clientip import Network
from gateway.routes import GATEWAY, Access, Route, pattern_params, template_path
from gateway.runtime import GatewayRuntime, RequestContext
from gateway.schemas import (
    DebugCommandRequest,
    DebugCommandResponse,
    DebugLogRequest,
    DebugLogResponse,
    DebugLogsResponse,
    DeepHealth,
    Error,
    HealthStatus,
    HealthSummary,
    LoginRequest,
    LoginResponse,
    MessageResponse,
    SessionInfo,
    component_schemas,
    ref,
)
from stockmanager.errors import (
    ApiError,
    Forbidden,
    GatewayTimeout,
    InvalidCredentials,
    InvalidJson,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from stockmanager.http import json_response

log = logging.getLogger("gateway.openapi")

Json = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
CACHE_TTL = 60.0
FETCH_TIMEOUT = 10.0
RETRY_AFTER_SECONDS = 5
SECURITY_SCHEME = "sessionCookie"
SCHEMA_PREFIX = "#/components/schemas/"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# What the gateway routes as `{name:int}`: 1 to 18 digits.
INT_PARAM_SCHEMA: Json = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
FRAMEWORK_VALIDATION_ERROR = SCHEMA_PREFIX + "HTTPValidationError"
_TEMPLATE_PARAM = re.compile(r"\{([^}]+)\}")

ACCESS_SENTENCES: dict[Access, str] = {
    Access.PUBLIC: "Access: public (no session needed).",
    Access.USER: "Access: user (any logged-in user, with the session cookie from "
    "`POST /api/login`).",
    Access.ADMIN: "Access: admin (the session of an admin or root user).",
    Access.ROOT: "Access: root (only the session of the root user).",
}

TAGS: tuple[tuple[str, str], ...] = (
    ("session", "Log in and out: the session cookie every other call sends."),
    ("health", "Health of the API and of every service behind it."),
    ("products", "Catalogue, stock, prices, import and export."),
    ("sales", "Sales (checkout), their history and corrections."),
    ("users", "User accounts (admin) and seller suggestions."),
    ("registration", "Self-registration and password reset."),
    ("applications", "Registrations waiting for an admin's decision."),
    ("settings", "Own profile and password, business settings (also at `/api/api/settings/*`)."),
    ("metrics", "Sales statistics and dashboards."),
    ("notifications", "In-app notifications and their live stream."),
    ("audit", "The audit trail of every change."),
    ("webhooks", "Signed HTTP deliveries of events to other systems (docs/webhooks.md)."),
    ("debug", "Diagnostics for the root user (also at `/api/api/debug/*`)."),
    ("docs", "This document and the interactive documentation page."),
)

INFO_DESCRIPTION = """\
The public API of StockManager, served by the gateway; every path is under `/api`.

**Sessions.** `POST /api/login` answers with a session cookie (HttpOnly); send it with every
other call. Each operation states who may call it in `x-access` and in its description:
`public`, `user` (any logged-in user), `admin` (admin or root) or `root`.

**Errors** are JSON: `{"error": <message>, "code": <machine code>}`, sometimes with details.

**State-changing requests** (POST, PUT, DELETE) sent by a browser must come from this origin or
an allowed one (`Origin`/`Referer` check); clients that send neither header are unaffected.
"""

# --------------------------------------------------------------------------- error answers


def _example(error: ApiError) -> Json:
    return {"summary": error.message, "value": error.body()}


def _raw_example(message: str, code: str) -> Json:
    return {"summary": message, "value": {"error": message, "code": code}}


@dataclass(frozen=True)
class ErrorAnswer:
    description: str
    examples: dict[str, Json]
    headers: Json = field(default_factory=dict)


_RETRY_AFTER: Json = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}

ERROR_ANSWERS: dict[int, ErrorAnswer] = {
    400: ErrorAnswer(
        "Invalid body or parameters.",
        {
            "invalid_json": _example(InvalidJson()),
            "validation_error": _example(ValidationFailed()),
        },
    ),
    401: ErrorAnswer(
        "No valid session cookie.", {"not_authenticated": _example(NotAuthenticated())}
    ),
    403: ErrorAnswer(
        "The session's role may not do this, or a browser sent it from a foreign origin.",
        {"forbidden": _example(Forbidden()), "origin": _example(Forbidden("Origen no permitido"))},
    ),
    404: ErrorAnswer(
        "No such record, or a path parameter of the wrong form.",
        {"not_found": _example(NotFound())},
    ),
    413: ErrorAnswer(
        "The body is larger than allowed.", {"too_large": _example(PayloadTooLarge())}
    ),
    415: ErrorAnswer(
        "The body is not labelled as JSON.", {"unsupported": _example(UnsupportedMediaType())}
    ),
    429: ErrorAnswer(
        "Too many attempts (failed logins for this user or address, or requests from this "
        "address to a limited public operation), or too many open live streams (per user or "
        "per gateway process); retry after `Retry-After` seconds.",
        {"rate_limited": _example(RateLimited())},
        _RETRY_AFTER,
    ),
    503: ErrorAnswer(
        "A service, or Redis (which holds the sessions), is unavailable.",
        {"unavailable": _example(ServiceUnavailable())},
    ),
    504: ErrorAnswer("A service did not answer in time.", {"timeout": _example(GatewayTimeout())}),
}


def gateway_error_statuses(route: Route, has_params: bool, has_parameters: bool) -> list[int]:
    """The error statuses an operation can answer before its handler runs: the gateway's own
    checks, and (for a service route with parameters) the kernel's refusal of parameters
    PostgreSQL cannot store."""
    statuses: set[int] = {503}  # sessions live in Redis; services may be down
    if route.method in BODY_METHODS:
        statuses |= {400, 413, 415}
    if has_parameters and route.target != GATEWAY:
        statuses.add(400)
    if route.access is not Access.PUBLIC:
        statuses.add(401)
    if route.access in (Access.ADMIN, Access.ROOT) or route.changes_state:
        statuses.add(403)
    if has_params:
        statuses.add(404)
    if route.target != GATEWAY or route.pattern == "/api/login":
        statuses.add(504)
    if route.pattern == "/api/login" or route.limit is not None or route.stream:
        statuses.add(429)
    return sorted(statuses)


# --------------------------------------------------------------------- the gateway's own ops


def _json(schema: Json, description: str, **extra: Any) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _errors(description: str, **examples: Json) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(Error), "examples": examples}},
    }


def _body(schema: Json) -> Json:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_SET_COOKIE: Json = {
    "Set-Cookie": {
        "description": "The session cookie (HttpOnly, SameSite=Lax, Path=/).",
        "schema": {"type": "string"},
    }
}

GATEWAY_OPERATIONS: dict[tuple[str, str], Json] = {
    ("GET", "/api/health"): {
        "summary": "Health of the API",
        "description": '`{"status": "Ok"}` while the gateway runs. With `deep=1`: the '
        "readiness of every service replica, PostgreSQL, Redis and the event backlog "
        "(503 when anything is down). Only root sees the details (and gets a fresh check); "
        'anyone else gets `{"status": "Ok"}` or `{"status": "Degraded"}` from a check at most '
        "`STOCKMANAGER_HEALTH_CACHE_SECONDS` old.",
        "parameters": [
            {
                "name": "deep",
                "in": "query",
                "required": False,
                "description": "`1`, `true` or `yes` for the deep check.",
                "schema": {"type": "string"},
                "example": "1",
            }
        ],
        "responses": {
            "200": _json(
                {"anyOf": [ref(HealthStatus), ref(HealthSummary), ref(DeepHealth)]}, "Healthy."
            ),
            "503": _json(
                {"anyOf": [ref(HealthSummary), ref(DeepHealth)]},
                "Deep check: something is down.",
            ),
        },
    },
    ("POST", "/api/login"): {
        "summary": "Log in",
        "description": "Checks the credentials and starts a session: the answer sets the "
        "session cookie, a new one on every login. Failed attempts are limited per user and "
        "per client address (429).",
        "requestBody": _body(ref(LoginRequest)),
        "responses": {
            "200": _json(ref(LoginResponse), "Logged in; the cookie is set.", headers=_SET_COOKIE),
            "400": _errors(
                "Missing or blank username or password, or a body that is not a JSON object.",
                missing=_example(ValidationFailed("Usuario y contraseña requeridos")),
                invalid_json=_example(InvalidJson()),
            ),
            "401": _errors(
                "Wrong username or password.", invalid_credentials=_example(InvalidCredentials())
            ),
            "403": _errors(
                "The account is disabled or not approved yet, or has no valid role.",
                account_disabled=_raw_example(
                    "Usuario desactivado. Contacta al administrador", "account_disabled"
                ),
                invalid_role=_raw_example("Rol de usuario no válido", "invalid_role"),
                origin=_example(Forbidden("Origen no permitido")),
            ),
        },
    },
    ("POST", "/api/logout"): {
        "summary": "Log out",
        "description": "Ends the session of the cookie and clears the cookie.",
        "responses": {"200": _json(ref(MessageResponse), "Logged out.", headers=_SET_COOKIE)},
    },
    ("GET", "/api/session"): {
        "summary": "The current session's user",
        "responses": {"200": _json(ref(SessionInfo), "The logged-in user.")},
    },
    ("POST", "/api/debug/log"): {
        "summary": "Write a client log line",
        "description": "Writes the line to the central log as `[JS CLIENT] ...`.",
        "requestBody": _body(ref(DebugLogRequest)),
        "responses": {
            "200": _json(ref(DebugLogResponse), "Logged."),
            "400": _errors(
                "No message.", missing=_example(ValidationFailed("Faltan campos requeridos"))
            ),
        },
    },
    ("GET", "/api/debug/logs"): {
        "summary": "The last central log lines",
        "responses": {"200": _json(ref(DebugLogsResponse), "Up to 100 lines, oldest first.")},
    },
    ("POST", "/api/debug/command"): {
        "summary": "Run a named diagnostic",
        "description": "One diagnostic from a fixed list: `health`, `queues` (event consumer "
        "lag), `routes`, `sessions`, `versions`. Nothing else is ever executed.",
        "requestBody": _body(ref(DebugCommandRequest)),
        "responses": {
            "200": _json(ref(DebugCommandResponse), "The diagnostic's output."),
            "400": _errors(
                "Not one of the allowed commands (the answer lists them in `allowed`).",
                refused={
                    "summary": "Unknown command",
                    "value": {
                        "error": "Comando no permitido. Comandos disponibles: health, queues, "
                        "routes, sessions, versions",
                        "code": "validation_error",
                        "allowed": ["health", "queues", "routes", "sessions", "versions"],
                    },
                },
            ),
        },
    },
    ("GET", "/api/openapi.json"): {
        "summary": "This OpenAPI document",
        "description": "The OpenAPI 3.1 document of the public API, merged from the services' "
        "own documents and the gateway's routes. Import it into Postman or any OpenAPI tool.",
        "responses": {
            "200": _json({"type": "object"}, "The document."),
            "503": {
                **_errors(
                    "A service's document cannot be read right now; retry later.",
                    unavailable=_example(ServiceUnavailable()),
                ),
                "headers": _RETRY_AFTER,
            },
        },
    },
    ("GET", "/api/docs"): {
        "summary": "Interactive documentation",
        "description": "Swagger UI for this document, served entirely by the gateway (works "
        "offline). Log in with `POST /api/login` from the page: the browser keeps the cookie "
        "and sends it with every call tried from the page.",
        "responses": {
            "200": {
                "description": "The documentation page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
    },
    ("GET", "/api/docs/{asset}"): {
        "summary": "An asset of the documentation page",
        "parameters": [
            {
                "name": "asset",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "example": "swagger-ui.css",
            }
        ],
        "responses": {
            "200": {
                "description": "The file.",
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                    "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
                },
            },
            "404": _errors("No such asset.", not_found=_example(NotFound())),
        },
    },
}


# ---------------------------------------------------------------------------------- helpers


def tag_for(route: Route) -> str:
    path = route.upstream_path or route.pattern
    if route.target == GATEWAY:
        if path in ("/api/login", "/api/logout", "/api/session"):
            return "session"
        if path.startswith("/api/debug/"):
            return "debug"
        if path == "/api/health":
            return "health"
        return "docs"
    if route.target == "users":
        if path.startswith("/api/applications"):
            return "applications"
        if path.startswith("/api/settings/"):
            return "settings"
        if path == "/api/register" or path.startswith(
            ("/api/users/reset-password", "/api/users/validate-code")
        ):
            return "registration"
    return route.target


def operation_id(method: str, path: str) -> str:
    return method.lower() + "_" + re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")


def path_shape(path: str) -> str:
    """A path with every parameter blanked, to match a route with a service's path."""
    return _TEMPLATE_PARAM.sub("{}", path)


def _walk_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith(SCHEMA_PREFIX):
            yield target[len(SCHEMA_PREFIX) :]
        for value in node.values():
            yield from _walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_refs(item)


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {key: _rewrite_refs(value, names) for key, value in node.items()}
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith(SCHEMA_PREFIX):
            name = target[len(SCHEMA_PREFIX) :]
            out["$ref"] = SCHEMA_PREFIX + names.get(name, name)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    return node


def reachable(roots: Iterable[Any], schemas: Json) -> set[str]:
    """The component names referenced from `roots`, transitively through `schemas`."""
    seen: set[str] = set()
    stack = [name for root in roots for name in _walk_refs(root)]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(_walk_refs(schemas.get(name)))
    return seen


def merge_components(
    reserved: Json, per_service: dict[str, Json]
) -> tuple[Json, dict[str, dict[str, str]]]:
    """All component schemas under one namespace, and each service's renames.

    `reserved` (the gateway's) keep their names. A name several services define identically is
    kept once; otherwise every service's version is prefixed `<service>.<name>`. Renaming
    rewrites `$ref`s, which can make further schemas differ, so this repeats until stable.
    """
    prefixed: set[tuple[str, str]] = set()
    while True:
        renames = {
            service: {
                name: f"{service}.{name}" if (service, name) in prefixed else name
                for name in schemas
            }
            for service, schemas in per_service.items()
        }
        merged: Json = dict(reserved)
        owner: dict[str, str] = {}
        clashes: set[str] = set()
        for service in sorted(per_service):
            for name, schema in per_service[service].items():
                final = renames[service][name]
                rewritten = _rewrite_refs(schema, renames[service])
                if final not in merged:
                    merged[final] = rewritten
                    owner[final] = service
                elif merged[final] != rewritten:
                    if (service, name) in prefixed:
                        raise ValueError(f"schema name {final!r} is defined twice")
                    clashes.add(name)
        if not clashes:
            return merged, renames
        for service, schemas in per_service.items():
            for name in clashes & set(schemas):
                prefixed.add((service, name))


def _is_error_shaped(schema: Any, components: Json) -> bool:
    """Whether every gateway error body (`{"error": str, "code": str}`) fits `schema`."""
    if not isinstance(schema, dict):
        return False
    target = schema.get("$ref")
    if isinstance(target, str) and target.startswith(SCHEMA_PREFIX):
        return _is_error_shaped(components.get(target[len(SCHEMA_PREFIX) :]), components)
    if schema.get("type") != "object" or schema.get("additionalProperties") is False:
        return False
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    if not required <= {"error", "code"}:
        return False
    return all(properties.get(key, {}).get("type") in (None, "string") for key in ("error", "code"))


def _add_error(op: Json, status: int, components: Json) -> None:
    answer = ERROR_ANSWERS[status]
    responses: Json = op.setdefault("responses", {})
    existing = responses.get(str(status))
    if existing is None:
        entry: Json = {
            "description": answer.description,
            "content": {
                "application/json": {"schema": ref(Error), "examples": dict(answer.examples)}
            },
        }
        if answer.headers:
            entry["headers"] = dict(answer.headers)
        responses[str(status)] = entry
        return
    content = existing.setdefault("content", {})
    media = content.setdefault("application/json", {})
    schema = media.get("schema")
    if schema is None:
        media["schema"] = ref(Error)
    elif not _is_error_shaped(schema, components):
        media["schema"] = {"anyOf": [schema, ref(Error)]}
    if "example" not in media:
        examples = media.setdefault("examples", {})
        for name, example in answer.examples.items():
            examples.setdefault(name, example)
    if answer.headers:
        existing.setdefault("headers", {}).update(
            {k: v for k, v in answer.headers.items() if k not in existing.get("headers", {})}
        )


def _path_schema(kind: str, declared: Any) -> Json:
    """A path parameter's schema, narrowed to what the gateway routes: 1 to 18 digits for
    `{name:int}`, one non-empty segment (no `/`) for `{name}`."""
    if kind == "int":
        return dict(INT_PARAM_SCHEMA)
    schema: Json = dict(declared) if isinstance(declared, dict) else {"type": "string"}
    if schema.get("type") == "string":
        schema.setdefault("minLength", 1)
        if kind != "path":
            schema.setdefault("pattern", "^[^/]+$")
    return schema


def _publish_params(op: Json, route: Route, service_path: str | None) -> None:
    """Path parameters named and typed as the route table says."""
    route_params = pattern_params(route.pattern)
    renames: dict[str, str] = {}
    if service_path is not None:
        service_names = _TEMPLATE_PARAM.findall(service_path)
        renames = {old: new for old, (new, _) in zip(service_names, route_params, strict=False)}
    kinds = dict(route_params)
    parameters: list[Json] = []
    seen: set[str] = set()
    for parameter in op.get("parameters", []):
        if parameter.get("in") == "path":
            name = renames.get(parameter["name"], parameter["name"])
            parameter = {**parameter, "name": name, "required": True}
            parameter["schema"] = _path_schema(kinds.get(name, ""), parameter.get("schema"))
            seen.add(name)
        parameters.append(parameter)
    for name, kind in route_params:
        if name not in seen:
            parameters.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": _path_schema(kind, None),
                }
            )
    if parameters:
        op["parameters"] = parameters


def _decorate(op: Json, route: Route, components: Json) -> Json:
    path = template_path(route.pattern)
    op["operationId"] = operation_id(route.method, path)
    op["tags"] = [tag_for(route)]
    op["x-access"] = str(route.access)
    sentence = ACCESS_SENTENCES[route.access]
    if route.upstream_path is not None:
        sentence += f" Alias of `{route.method} {template_path(route.upstream_path)}`."
    description = op.get("description")
    op["description"] = f"{description.rstrip()}\n\n{sentence}" if description else sentence
    if route.access is Access.PUBLIC:
        op.pop("security", None)
    else:
        op["security"] = [{SECURITY_SCHEME: []}]
    responses = op.setdefault("responses", {})
    if not any(str(status).startswith("2") for status in responses):
        responses["200"] = {"description": "Successful response."}
    statuses = gateway_error_statuses(
        route, bool(pattern_params(route.pattern)), bool(op.get("parameters"))
    )
    for status in statuses:
        _add_error(op, status, components)
    return op


def _drop_framework_validation(op: Json) -> None:
    """Remove FastAPI's default 422 answer, which the services' error handler never gives."""
    answer = op.get("responses", {}).get("422")
    if not isinstance(answer, dict):
        return
    schemas = [media.get("schema") for media in answer.get("content", {}).values()]
    if schemas and all(schema == {"$ref": FRAMEWORK_VALIDATION_ERROR} for schema in schemas):
        del op["responses"]["422"]


def _service_operation(route: Route, document: Json) -> tuple[Json | None, str | None]:
    """The service's operation for a route (matched on method and path shape)."""
    target = path_shape(route.upstream_path or route.pattern)
    method = route.method.lower()
    for path, item in document.get("paths", {}).items():
        if path_shape(path) == target and isinstance(item, dict) and method in item:
            return item[method], path
    return None, None


# ----------------------------------------------------------------------------- the document


def build_document(
    routes: Iterable[Route], service_documents: dict[str, Json], *, cookie_name: str
) -> Json:
    """The public document from the route table and each service's own document."""
    routes = list(routes)
    # Each service's operations, and only the component schemas they reach.
    picked: list[tuple[Route, Json, str | None]] = []
    used: dict[str, Json] = {}
    for route in routes:
        if route.target == GATEWAY:
            key = (route.method, route.upstream_path or route.pattern)
            definition = GATEWAY_OPERATIONS.get(key)
            op = copy.deepcopy(definition) if definition is not None else None
            picked.append((route, op or _undescribed(route), None))
            continue
        document = service_documents.get(route.target, {})
        service_op, service_path = _service_operation(route, document)
        if service_op is None:
            log.warning(
                "route not described by its service",
                extra={"method": route.method, "path": route.pattern, "service": route.target},
            )
            picked.append((route, _undescribed(route), None))
            continue
        op = {"x-service": route.target, **copy.deepcopy(service_op)}
        _drop_framework_validation(op)
        picked.append((route, op, service_path))
    for service, document in service_documents.items():
        schemas = document.get("components", {}).get("schemas", {})
        ops = [op for route, op, _ in picked if route.target == service]
        used[service] = {
            name: schemas[name] for name in sorted(reachable(ops, schemas)) if name in schemas
        }
    gateway_schemas = component_schemas()
    components, renames = merge_components(gateway_schemas, used)

    paths: dict[str, Json] = {}
    for route, op, service_path in picked:
        service = op.pop("x-service", None)
        if service is not None:
            op = _rewrite_refs(op, renames.get(service, {}))
        op.pop("operationId", None)
        _publish_params(op, route, service_path)
        _decorate(op, route, components)
        paths.setdefault(template_path(route.pattern), {})[route.method.lower()] = op

    used_tags = {tag_for(route) for route in routes}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "StockManager API",
            "version": _version(),
            "description": INFO_DESCRIPTION,
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS if name in used_tags]
        + [{"name": name} for name in sorted(used_tags - {name for name, _ in TAGS})],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie_name,
                    "description": "The session cookie set by `POST /api/login`. Browsers "
                    "and cookie-aware clients (Postman) keep and send it by themselves.",
                }
            },
        },
    }


def _undescribed(route: Route) -> Json:
    return {
        "summary": f"{route.method} {template_path(route.pattern)}",
        "responses": {"200": {"description": "Successful response."}},
    }


def _version() -> str:
    try:
        return metadata.version("stockmanager")
    except metadata.PackageNotFoundError:
        return "0"


# --------------------------------------------------------------------- fetching and caching


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _fetch(runtime: GatewayRuntime, service: str, request_id: str) -> Json:
    try:
        upstream = await asyncio.wait_for(
            runtime.proxy.forward(
                service,
                "GET",
                "/openapi.json",
                {"accept": "application/json", "x-request-id": request_id},
                b"",
            ),
            FETCH_TIMEOUT,
        )
        if upstream.status != 200 or upstream.body is None:
            raise ValueError(f"http {upstream.status}")
        document = orjson.loads(upstream.body)
        if not isinstance(document, dict):
            raise ValueError("not an object")
        return document
    except (ApiError, TimeoutError, ValueError) as exc:
        log.warning(
            "service OpenAPI document unavailable", extra={"service": service, "error": repr(exc)}
        )
        raise _unavailable() from exc


@dataclass
class DocumentCache:
    ttl: float = CACHE_TTL
    document: Json | None = None
    expires: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, runtime: GatewayRuntime, request_id: str) -> Json:
        if self.document is not None and time.monotonic() < self.expires:
            return self.document
        async with self.lock:  # one merge at a time; the others wait for its result
            if self.document is not None and time.monotonic() < self.expires:
                return self.document
            routes = runtime.routes.routes
            services = sorted({route.target for route in routes if route.target != GATEWAY})
            results = await asyncio.gather(
                *(_fetch(runtime, service, request_id) for service in services),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            documents = dict(zip(services, results, strict=True))
            self.document = build_document(
                routes,
                documents,  # type: ignore[arg-type]
                cookie_name=runtime.settings.cookie_name,
            )
            self.expires = time.monotonic() + self.ttl
            return self.document


def _cache(ctx: RequestContext) -> DocumentCache:
    state = ctx.request.app.state
    cache: DocumentCache | None = getattr(state, "openapi_cache", None)
    if cache is None:
        cache = DocumentCache()
        state.openapi_cache = cache
    return cache


def public_origin(ctx: RequestContext) -> str:
    """The origin the client used: the request's own, or the one a trusted proxy (TLS
    termination, STOCKMANAGER_TRUSTED_PROXIES) names in X-Forwarded-Proto/-Host."""
    request = ctx.request
    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    peer = request.client.host if request.client else None
    if peer and _trusted(peer, ctx.runtime.trusted_proxies):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        if forwarded_host:
            host = forwarded_host
    return f"{scheme}://{host}{request.scope.get('root_path', '')}".rstrip("/")


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def openapi_json(ctx: RequestContext) -> Response:
    document = await _cache(ctx).get(ctx.runtime, ctx.request_id)
    servers = [{"url": public_origin(ctx), "description": "This gateway"}]
    published = {**document, "servers": servers}
    return json_response(published, headers={"Cache-Control": "no-cache"})
