"""The audit service's typed runtime: its settings (it has no resources of its own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.audit.settings import AuditSettings
from stockmanager.service_app import NoResources, ServiceRuntime, runtime_dependency

AuditRuntime = ServiceRuntime[AuditSettings, NoResources]
Runtime = Annotated[AuditRuntime, Depends(runtime_dependency(AuditSettings, NoResources))]
