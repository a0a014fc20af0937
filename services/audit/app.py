"""The audit service application."""

from __future__ import annotations

from fastapi import FastAPI

from services.audit.api import router
from services.audit.events import consumers
from services.audit.settings import audit_settings
from stockmanager.service_app import NoResources, create_service_app


def create_app() -> FastAPI:
    # No outbox: the audit service consumes events and publishes none.
    return create_service_app(
        "audit",
        settings=audit_settings(),
        routers=[router],
        resources=NoResources.open,
        consumers=consumers,
    )
