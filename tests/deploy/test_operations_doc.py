"""docs/operations.md documents every variable the deployment files set."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.conftest import REPO

DOCUMENTED = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \|", re.MULTILINE)
# The variables every deployment must be able to set (the processes' configuration contract).
CONTRACT = {
    "DATABASE_URL",
    "REDIS_URL",
    "STOCKMANAGER_INTERNAL_SECRET",
    "STOCKMANAGER_ROOT_PASSWORD",
    "STOCKMANAGER_TIMEZONE",
    "STOCKMANAGER_LOG_LEVEL",
    "STOCKMANAGER_PRODUCTS_URLS",
    "STOCKMANAGER_SALES_URLS",
    "STOCKMANAGER_USERS_URLS",
    "STOCKMANAGER_METRICS_URLS",
    "STOCKMANAGER_NOTIFICATIONS_URLS",
    "STOCKMANAGER_AUDIT_URLS",
    "STOCKMANAGER_COOKIE_SECURE",
    "STOCKMANAGER_ALLOWED_ORIGINS",
    "STOCKMANAGER_TRUSTED_PROXIES",
    "STOCKMANAGER_OPENFOODFACTS_URL",
    "STOCKMANAGER_SMTP_HOST",
    "STOCKMANAGER_SMTP_PORT",
    "STOCKMANAGER_SMTP_USERNAME",
    "STOCKMANAGER_SMTP_PASSWORD",
    "STOCKMANAGER_SMTP_FROM",
    "STOCKMANAGER_SMTP_TLS",
}


def documented() -> set[str]:
    return set(DOCUMENTED.findall((REPO / "docs" / "operations.md").read_text()))


def test_the_configuration_contract_is_documented() -> None:
    assert CONTRACT - documented() == set()


def test_every_variable_the_deploy_files_set_is_documented(
    compose: dict[str, Any], production_objects: list[dict[str, Any]]
) -> None:
    used: set[str] = set()
    for name, service in compose["services"].items():
        if name not in ("postgres", "redis"):
            used |= set(service.get("environment") or {})
    for obj in production_objects:
        if obj["kind"] in ("ConfigMap", "Secret"):
            used |= set(obj["data"])
    assert used - documented() == set()
