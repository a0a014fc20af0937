"""The processes that make up the system: name, default port, app factory, database schema.

This is the runtime's composition root (used by `stockmanager up/serve/migrate` and the
deploy tests); it names service packages by import string only and never imports their code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    name: str
    port: int
    app_factory: str  # "module:function" returning an ASGI app
    schema: str | None = None

    @property
    def url_setting(self) -> str:
        """The gateway setting (env var) that lists this service's replica URLs."""
        return f"STOCKMANAGER_{self.name.upper()}_URLS"


GATEWAY = ProcessInfo("gateway", 5000, "gateway.app:create_app")

SERVICES: tuple[ProcessInfo, ...] = (
    ProcessInfo("products", 5101, "services.products.app:create_app", "products"),
    ProcessInfo("sales", 5102, "services.sales.app:create_app", "sales"),
    ProcessInfo("users", 5103, "services.users.app:create_app", "users"),
    ProcessInfo("metrics", 5104, "services.metrics.app:create_app", "metrics"),
    ProcessInfo("notifications", 5105, "services.notifications.app:create_app", "notifications"),
    ProcessInfo("audit", 5106, "services.audit.app:create_app", "audit"),
    ProcessInfo("webhooks", 5107, "services.webhooks.app:create_app", "webhooks"),
)

PROCESSES: tuple[ProcessInfo, ...] = (GATEWAY, *SERVICES)

# Schemas that publish views or functions others use are migrated first.
MIGRATION_ORDER: tuple[str, ...] = (
    "users",
    "products",
    "sales",
    "notifications",
    "audit",
    "metrics",
    "webhooks",
)

ROOT_BOOTSTRAP = "services.users.bootstrap:ensure_root"

# `stockmanager import-upstream`: each schema's part of the import, by import string
# (stockmanager/upstream/run.py says what each provides).
UPSTREAM_IMPORT: dict[str, str] = {
    "users": "services.users.upstream_import",
    "products": "services.products.upstream_import",
    "sales": "services.sales.upstream_import",
    "notifications": "services.notifications.upstream_import",
    "audit": "services.audit.upstream_import",
    "metrics": "services.metrics.upstream_import",
}

# Replica r (0-based) of a service listens on port + REPLICA_PORT_STEP * r.
REPLICA_PORT_STEP = 10
# The gateway's internal listener (/readyz, /metrics for probes and Prometheus; never public).
GATEWAY_INTERNAL_PORT = 5090


def process(name: str) -> ProcessInfo:
    for info in PROCESSES:
        if info.name == name:
            return info
    raise KeyError(name)


def service_names() -> list[str]:
    return [info.name for info in SERVICES]
