"""Request dependencies as coroutines.

The kernel's `Runtime`, `CurrentUser` and `AdminUser` dependencies are plain functions, which
FastAPI runs in its thread pool: a thread hand-off each, three per request, a measurable share
of a list request's CPU (bench/results/products.md). These call the very same kernel checks
directly on the event loop (they do no I/O).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stockmanager.identity import Identity
from stockmanager.service_app import (
    ServiceRuntime,
    get_identity,
    get_runtime,
    require_admin,
    require_user,
)


async def _runtime(request: Request) -> ServiceRuntime:
    return get_runtime(request)


async def _current_user(request: Request) -> Identity:
    return require_user(get_identity(request))


async def _admin_user(request: Request) -> Identity:
    return require_admin(require_user(get_identity(request)))


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
CurrentUser = Annotated[Identity, Depends(_current_user)]
AdminUser = Annotated[Identity, Depends(_admin_user)]
