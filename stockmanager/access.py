"""The access level of a service route, read from its dependencies (one derivation for all).

A route that depends (directly or through other dependencies) on `require_root` is `root`, on
`require_admin` is `admin`, on `require_user` is `user`; anything else is `public` (it may still
read the caller through `get_identity`). The level is published in each route's OpenAPI
operation as `x-access`, and the gateway's route-agreement test compares it with `ROUTE_MAP`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from stockmanager.service_app import require_admin, require_root, require_user

AccessLevel = Literal["public", "user", "admin", "root"]

ACCESS_EXTENSION = "x-access"

# Strongest first: a root route also depends on require_user (through require_root).
_GUARDS: tuple[tuple[Callable[..., Any], AccessLevel], ...] = (
    (require_root, "root"),
    (require_admin, "admin"),
    (require_user, "user"),
)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def dependant_access(dependant: Dependant) -> AccessLevel:
    """The access level a route's dependency tree enforces."""
    calls = set(_calls(dependant))
    for guard, level in _GUARDS:
        if guard in calls:
            return level
    return "public"


def route_access(route: APIRoute) -> AccessLevel:
    return dependant_access(route.dependant)


def annotate_access(router: APIRouter) -> None:
    """Put `x-access` in the OpenAPI operation of every API route of `router`.

    Called before the router is included: FastAPI builds each included route's effective copy
    (the one the OpenAPI document is made from) from the route as it is then.
    """
    for route in router.routes:
        if isinstance(route, APIRoute):
            extra = dict(route.openapi_extra or {})
            extra[ACCESS_EXTENSION] = route_access(route)
            route.openapi_extra = extra
