"""Settings of the audit service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from stockmanager.settings import KernelSettings


class AuditSettings(KernelSettings):
    # `limit` of the list endpoints: default as upstream (50); upstream had no cap, we clamp.
    audit_default_limit: int = Field(50, ge=1)
    audit_max_limit: int = Field(500, ge=1)
    # The entity trail had no limit upstream: by default it returns up to the cap in one page.
    audit_trail_default_limit: int = Field(500, ge=1)


@lru_cache(maxsize=1)
def audit_settings() -> AuditSettings:
    return AuditSettings()
