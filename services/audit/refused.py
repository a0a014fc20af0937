"""The upstream action name of a state-changing request the gateway refused or that failed.

A `request.refused` event carries the method and path, not an action; upstream's decorator
named the action per endpoint (reference §2) and fell back to the lower-cased HTTP method.
Paths are matched here by pattern, not by importing the gateway's route map: the audit service
depends on the event contract only.
"""

from __future__ import annotations

import re

_ID = r"\d+"
_KEY = r"[^/]+"

# (method, path regex without the /api prefix, action); first match wins.
_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("POST", "/logout", "logout"),
    ("POST", "/login", "login"),
    ("POST", "/register", "register"),
    # products
    ("POST", "/products", "create"),
    ("POST", "/products/import", "import"),
    ("POST", "/products/update_price_bulk", "update_price_bulk"),
    ("POST", "/products/stock_update_bulk", "stock_update_bulk"),
    ("PUT", f"/products/{_ID}", "update"),
    ("DELETE", f"/products/{_ID}", "delete"),
    ("POST", f"/products/{_ID}/activate", "activate"),
    # sales
    ("POST", "/sales", "create"),
    ("POST", "/sales/bulk", "create"),
    ("PUT", f"/sales/{_ID}", "update"),
    # users and password reset
    ("POST", "/users", "create"),
    ("PUT", f"/users/{_ID}", "update"),
    ("DELETE", f"/users/{_ID}", "delete"),
    ("POST", "/users/reset-password", "reset_password"),
    ("POST", "/users/validate-code", "validate_code"),
    ("POST", "/users/reset-password/change-password", "change_password"),
    # applications
    ("POST", f"/applications/{_ID}/approve", "approve"),
    ("POST", f"/applications/{_ID}/reject", "reject"),
    # settings (also under upstream's double prefix /api/api/...)
    ("PUT", "/settings/profile", "update"),
    ("PUT", "/settings/password", "change_password"),
    ("PUT", f"/settings/actual/{_KEY}", "update"),
    # notifications
    ("POST", "/notifications/create", "create"),
    ("DELETE", f"/notifications/{_ID}/delete", "delete"),
    ("POST", f"/notifications/{_ID}/read", "read"),
    ("POST", "/notifications/read-all", "read_all"),
    # debug
    ("POST", "/debug/command", "debug_command"),
    ("POST", "/debug/log", "debug_log"),
)

_COMPILED = tuple(
    (method, re.compile(rf"^/api(?:/api)?{pattern}/?$"), action)
    for method, pattern, action in _ACTIONS
)


def action_for_request(method: str | None, path: str | None) -> str:
    method = (method or "").upper()
    path = (path or "").split("?", 1)[0]
    for candidate, regex, action in _COMPILED:
        if candidate == method and regex.match(path):
            return action
    return method.lower() or "request"
