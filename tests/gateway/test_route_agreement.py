"""Every route is declared twice, in the gateway's ROUTE_MAP and in each service's routers: the
two must agree both ways, with the same access level.

Each service's app is built in-process (factories do no I/O) and its API routes are listed with
the access level `stockmanager.access` derives from their dependencies, the same derivation that
puts `x-access` in the services' OpenAPI documents. Services also enforce finer rules inside
(e.g. the audit history of a user: the user themself or root); the coarse level must still match.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from gateway.routes import GATEWAY, ROUTE_MAP, Access, Route, _r
from stockmanager.access import ACCESS_EXTENSION, dependant_access
from stockmanager.registry import SERVICES

# Routes only the gateway itself calls (credential check at login); never public.
INTERNAL_PREFIX = "/internal/"
_PARAM = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class ServiceRoute:
    service: str
    method: str
    path: str  # FastAPI's path template, e.g. /api/products/{product_id}
    access: str
    documented_access: str | None  # the `x-access` its OpenAPI operation carries


def shape(path: str) -> str:
    """The path with its parameters blanked: `/api/products/{id:int}` → `/api/products/{}`."""
    return _PARAM.sub("{}", path)


@contextmanager
def _logging_untouched() -> Iterator[None]:
    """App factories configure logging for their process; keep the test process's own."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = [
        (logging.getLogger(n), logging.getLogger(n).handlers[:], logging.getLogger(n).level)
        for n in names
    ]
    propagate = {n: logging.getLogger(n).propagate for n in names[1:]}
    try:
        yield
    finally:
        for logger, handlers, level in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
        for name, value in propagate.items():
            logging.getLogger(name).propagate = value


def list_service_routes(service: str, app: FastAPI) -> list[ServiceRoute]:
    routes: list[ServiceRoute] = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        path = context.path_format
        if path.startswith(INTERNAL_PREFIX):
            continue
        access = dependant_access(context.dependant)
        documented = (context.openapi_extra or {}).get(ACCESS_EXTENSION)
        for method in sorted(context.methods or ()):
            routes.append(ServiceRoute(service, method, path, access, documented))
    return routes


def agreement_problems(table: Iterable[Route], service_routes: Iterable[ServiceRoute]) -> list[str]:
    """Every disagreement between a route table and the services' routes (empty: they agree)."""
    problems: list[str] = []
    by_key = {(r.service, r.method, shape(r.path)): r for r in service_routes}
    mapped: set[tuple[str, str, str]] = set()
    for route in table:
        if route.target == GATEWAY:
            continue
        key = (route.target, route.method, shape(route.upstream_path or route.pattern))
        mapped.add(key)
        found = by_key.get(key)
        if found is None:
            problems.append(
                f"ROUTE_MAP {route.method} {route.pattern} → {route.target}: "
                "the service has no such route"
            )
        elif found.access != str(route.access):
            problems.append(
                f"{route.method} {route.pattern}: ROUTE_MAP says {route.access}, "
                f"{route.target} requires {found.access}"
            )
    for key, found in sorted(by_key.items()):
        if key not in mapped:
            problems.append(
                f"{found.method} {found.path} ({found.service}, {found.access}) "
                "is missing from ROUTE_MAP"
            )
    return problems


def _factory(app_factory: str) -> Callable[[], FastAPI]:
    module, name = app_factory.split(":")
    factory: Callable[[], FastAPI] = getattr(importlib.import_module(module), name)
    return factory


@pytest.fixture(scope="module")
def service_routes() -> list[ServiceRoute]:
    routes: list[ServiceRoute] = []
    with _logging_untouched():
        for info in SERVICES:
            routes.extend(list_service_routes(info.name, _factory(info.app_factory)()))
    return routes


def test_route_map_and_services_agree(service_routes: list[ServiceRoute]) -> None:
    assert {r.service for r in service_routes} == {info.name for info in SERVICES}
    assert agreement_problems(ROUTE_MAP, service_routes) == []


def test_services_document_the_access_they_enforce(service_routes: list[ServiceRoute]) -> None:
    wrong = [r for r in service_routes if r.documented_access != r.access]
    assert wrong == []


def test_self_or_root_audit_history_is_a_user_route(service_routes: list[ServiceRoute]) -> None:
    history = [
        r for r in service_routes if r.service == "audit" and shape(r.path) == "/api/user/{}"
    ]
    assert [r.access for r in history] == ["user"]


# ------------------------------------------------------ the check itself catches each case


def _without(table: tuple[Route, ...], method: str, pattern: str) -> tuple[Route, ...]:
    kept = tuple(r for r in table if (r.method, r.pattern) != (method, pattern))
    assert len(kept) == len(table) - 1
    return kept


def test_check_detects_a_service_route_missing_from_the_table(
    service_routes: list[ServiceRoute],
) -> None:
    table = _without(ROUTE_MAP, "GET", "/api/never-sold")
    assert agreement_problems(table, service_routes) == [
        "GET /api/never-sold (metrics, admin) is missing from ROUTE_MAP"
    ]


def test_check_detects_a_table_entry_without_service_route(
    service_routes: list[ServiceRoute],
) -> None:
    table = (*ROUTE_MAP, _r("POST", "/api/products/{id:int}/archive", "products", Access.ADMIN))
    assert agreement_problems(table, service_routes) == [
        "ROUTE_MAP POST /api/products/{id:int}/archive → products: the service has no such route"
    ]
    # An alias whose target path does not exist is caught the same way.
    alias = _r(
        "GET", "/api/api/settings/nothing", "users", Access.ADMIN, upstream_path="/api/nothing"
    )
    assert agreement_problems((*ROUTE_MAP, alias), service_routes) == [
        "ROUTE_MAP GET /api/api/settings/nothing → users: the service has no such route"
    ]


def test_check_detects_a_different_access_level(service_routes: list[ServiceRoute]) -> None:
    table = tuple(
        dataclasses.replace(r, access=Access.ADMIN)
        if (r.method, r.pattern) == ("GET", "/api/user/{id:int}")
        else r
        for r in ROUTE_MAP
    )
    assert agreement_problems(table, service_routes) == [
        "GET /api/user/{id:int}: ROUTE_MAP says admin, audit requires user"
    ]
    # And from the service's side: a route whose dependencies changed.
    changed = [
        dataclasses.replace(r, access="root") if r.path == "/api/stats" else r
        for r in service_routes
    ]
    assert agreement_problems(ROUTE_MAP, changed) == [
        "GET /api/stats: ROUTE_MAP says user, metrics requires root"
    ]
