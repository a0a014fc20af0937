"""ROUTE_MAP: every `/api` path, the process that serves it, and who may call it.

One declarative table. The gateway enforces the coarse access level here; services enforce the
fine-grained rules (ownership, root protection) again. Both must hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.publiclimits import PublicLimit


class Access(StrEnum):
    PUBLIC = "public"
    USER = "user"  # any logged-in role
    ADMIN = "admin"  # admin or root
    ROOT = "root"


GATEWAY = "gateway"  # served by the gateway itself

_PARAM = re.compile(r"\{(\w+)(?::(int|path))?\}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    target: str  # a service name, or GATEWAY
    access: Access
    stream: bool = False  # proxy the response unbuffered (SSE)
    max_body: int | None = None  # overrides the default body limit
    upstream_path: str | None = None  # alias: forward to this pattern instead
    limit: PublicLimit | None = None  # per-address request limit (gateway/publiclimits.py)
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_pattern(self.pattern))

    @property
    def changes_state(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]))
        name, kind = match.group(1), match.group(2)
        body = r"[0-9]{1,18}" if kind == "int" else ".+" if kind == "path" else r"[^/]+"
        parts.append(f"(?P<{name}>{body})")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    # \Z, not $: "$" also matches before a trailing newline ("/api/sales/5\n").
    return re.compile("^" + "".join(parts) + "/?\\Z")


def pattern_params(pattern: str) -> list[tuple[str, str]]:
    """Each parameter of a pattern as (name, kind), kind "int", "path" or "" (any segment)."""
    return [(match.group(1), match.group(2) or "") for match in _PARAM.finditer(pattern)]


def template_path(pattern: str) -> str:
    """The pattern as an OpenAPI path template: `{id:int}` becomes `{id}`."""
    return _PARAM.sub(lambda match: "{" + match.group(1) + "}", pattern)


def _r(method: str, pattern: str, target: str, access: Access, **options: object) -> Route:
    return Route(method, pattern, target, access, **options)  # type: ignore[arg-type]


P, U, A, R = Access.PUBLIC, Access.USER, Access.ADMIN, Access.ROOT
MiB = 1024 * 1024

ROUTE_MAP: tuple[Route, ...] = (
    # gateway itself: health, session, debug
    _r("GET", "/api/health", GATEWAY, P),
    _r("POST", "/api/login", GATEWAY, P),
    _r("POST", "/api/logout", GATEWAY, U),
    _r("GET", "/api/session", GATEWAY, U),
    _r("POST", "/api/debug/log", GATEWAY, R),
    _r("GET", "/api/debug/logs", GATEWAY, R),
    _r("POST", "/api/debug/command", GATEWAY, R),
    _r("POST", "/api/api/debug/log", GATEWAY, R, upstream_path="/api/debug/log"),
    _r("GET", "/api/api/debug/logs", GATEWAY, R, upstream_path="/api/debug/logs"),
    # products
    _r("GET", "/api/products_all", "products", U),
    _r("GET", "/api/products", "products", U),
    _r("POST", "/api/products", "products", A),
    _r("GET", "/api/products/export", "products", A),
    _r("POST", "/api/products/import", "products", A, max_body=10 * MiB),
    _r("POST", "/api/products/update_price_bulk", "products", A),
    _r("POST", "/api/products/stock_update_bulk", "products", A),
    _r("GET", "/api/products/info/{barcode}", "products", U),
    _r("GET", "/api/products/{id:int}", "products", U),
    _r("PUT", "/api/products/{id:int}", "products", A),
    _r("DELETE", "/api/products/{id:int}", "products", A),
    _r("POST", "/api/products/{id:int}/activate", "products", A),
    _r("GET", "/api/products/{id:int}/movements", "products", A),
    _r("GET", "/api/items", "products", U),
    # sales
    _r("POST", "/api/sales", "sales", U),
    _r("POST", "/api/sales/bulk", "sales", U),
    _r("GET", "/api/sales", "sales", U),
    _r("GET", "/api/sales/{id:int}", "sales", U),
    _r("GET", "/api/sales/{id:int}/edit", "sales", A),
    _r("PUT", "/api/sales/{id:int}", "sales", A),
    # users, registration, password reset
    _r("GET", "/api/users", "users", A),
    _r("POST", "/api/users", "users", A),
    _r("GET", "/api/users/{id:int}", "users", A),
    _r("PUT", "/api/users/{id:int}", "users", A),
    _r("DELETE", "/api/users/{id:int}", "users", A),
    _r("POST", "/api/users/reset-password", "users", P, limit=PublicLimit.RESET_REQUEST),
    _r("POST", "/api/users/validate-code", "users", P, limit=PublicLimit.RESET_CODE),
    _r(
        "POST",
        "/api/users/reset-password/change-password",
        "users",
        P,
        limit=PublicLimit.RESET_CODE,
    ),
    _r("POST", "/api/register", "users", P, limit=PublicLimit.REGISTER),
    _r("GET", "/api/suggest/vendors", "users", U),
    # applications
    _r("GET", "/api/applications", "users", A),
    _r("POST", "/api/applications/{id:int}/approve", "users", A),
    _r("POST", "/api/applications/{id:int}/reject", "users", A),
    # settings (also at upstream's double-prefix aliases)
    _r("PUT", "/api/settings/profile", "users", U),
    _r("PUT", "/api/settings/password", "users", U),
    _r("GET", "/api/settings/actual", "users", A),
    _r("GET", "/api/settings/actual/{key}", "users", A),
    _r("PUT", "/api/settings/actual/{key}", "users", R),
    _r("PUT", "/api/api/settings/profile", "users", U, upstream_path="/api/settings/profile"),
    _r("PUT", "/api/api/settings/password", "users", U, upstream_path="/api/settings/password"),
    _r("GET", "/api/api/settings/actual", "users", A, upstream_path="/api/settings/actual"),
    _r(
        "GET",
        "/api/api/settings/actual/{key}",
        "users",
        A,
        upstream_path="/api/settings/actual/{key}",
    ),
    _r(
        "PUT",
        "/api/api/settings/actual/{key}",
        "users",
        R,
        upstream_path="/api/settings/actual/{key}",
    ),
    # metrics
    _r("GET", "/api/stats", "metrics", U),
    _r("GET", "/api/metrics", "metrics", A),
    _r("GET", "/api/never-sold", "metrics", A),
    # notifications
    _r("GET", "/api/notifications/unread", "notifications", U),
    _r("GET", "/api/notifications/all", "notifications", U),
    _r("POST", "/api/notifications/{id:int}/read", "notifications", U),
    _r("POST", "/api/notifications/read-all", "notifications", U),
    _r("POST", "/api/notifications/create", "notifications", A),
    _r("DELETE", "/api/notifications/{id:int}/delete", "notifications", A),
    _r("GET", "/api/notifications/stream", "notifications", U, stream=True),
    # audit
    _r("GET", "/api/user/{id:int}", "audit", U),
    _r("GET", "/api/all", "audit", R),
    _r("GET", "/api/entity/{entity_type}/{id:int}", "audit", A),
    # webhooks (outgoing, signed deliveries of domain events)
    _r("POST", "/api/webhooks", "webhooks", A),
    _r("GET", "/api/webhooks", "webhooks", A),
    _r("GET", "/api/webhooks/{id:int}", "webhooks", A),
    _r("PUT", "/api/webhooks/{id:int}", "webhooks", A),
    _r("DELETE", "/api/webhooks/{id:int}", "webhooks", A),
    _r("POST", "/api/webhooks/{id:int}/rotate-secret", "webhooks", A),
    _r("POST", "/api/webhooks/{id:int}/test", "webhooks", A),
    _r("GET", "/api/webhooks/{id:int}/deliveries", "webhooks", A),
    _r("POST", "/api/webhooks/{id:int}/deliveries/{delivery_id:int}/redeliver", "webhooks", A),
    # the API reference (last: only requests that match nothing above pay for these)
    _r("GET", "/api/openapi.json", GATEWAY, P),
    _r("GET", "/api/docs", GATEWAY, P),
    _r("GET", "/api/docs/{asset}", GATEWAY, P),
)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]

    def upstream_path(self, path: str) -> str:
        if self.route.upstream_path is None:
            return path
        return self.route.upstream_path.format(**self.params)


class RouteTable:
    """Finds the route for (method, path); tells 404 (no path) from 405 (wrong method)."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self._methods_by_pattern: dict[str, set[str]] = {}
        for route in routes:
            self._methods_by_pattern.setdefault(route.pattern, set()).add(route.method)

    def match(self, method: str, path: str) -> Match | list[str] | None:
        """A Match; None if no route has this path; else the allowed methods (→ 405)."""
        allowed: set[str] = set()
        for route in self.routes:
            found = route.regex.match(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return Match(route, found.groupdict())
            allowed.add(route.method)
        return sorted(allowed) if allowed else None


ENTITY_BY_TARGET = {
    "products": "product",
    "sales": "sale",
    "users": "user",
    "notifications": "notification",
    "audit": "audit",
    "metrics": "metrics",
    "webhooks": "webhook",
    GATEWAY: "system",
}


def entity_type_for(route: Route) -> str:
    if "/applications/" in route.pattern:
        return "application"
    if "/settings/" in route.pattern:
        return "settings"
    if "/debug/" in route.pattern:
        return "debug"
    return ENTITY_BY_TARGET.get(route.target, route.target)
