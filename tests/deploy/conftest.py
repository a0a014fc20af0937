"""Fixtures for the deployment tests: rendered Kubernetes manifests, the compose file.

Everything here is offline and needs no database: the manifests are rendered by
tests/deploy/kustomize_render.py (no kustomize binary) and validated with bundled schemas.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize_render import render

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
PRODUCTION = Path("overlays/production")

# The processes the deployment must run (gateway first), with their ports.
PROCESSES = {
    "gateway": 5000,
    "products": 5101,
    "sales": 5102,
    "users": 5103,
    "metrics": 5104,
    "notifications": 5105,
    "audit": 5106,
}
SERVICES = [name for name in PROCESSES if name != "gateway"]


def production_secrets_env() -> dict[str, str]:
    """Values the tests put in the git-ignored secrets.env, distinct from every placeholder."""
    return {
        "DATABASE_URL": "postgresql://stockmanager:pw-test@db.internal:5432/stockmanager",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "STOCKMANAGER_INTERNAL_SECRET": "internal-secret-for-tests-0123456789abcdef",
        "STOCKMANAGER_ROOT_PASSWORD": "root-password-for-tests",
        "STOCKMANAGER_SMTP_PASSWORD": "smtp-password-for-tests",
    }


@pytest.fixture(scope="session")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/k8s copied aside, with the production secrets.env an operator would write."""
    target = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("secrets.env"))
    lines = [f"{key}={value}" for key, value in production_secrets_env().items()]
    (target / PRODUCTION / "secrets.env").write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture(scope="session")
def base_objects() -> list[dict[str, Any]]:
    return render(K8S / "base")


@pytest.fixture(scope="session")
def production_objects(k8s_copy: Path) -> list[dict[str, Any]]:
    return render(k8s_copy / PRODUCTION)


@pytest.fixture(scope="session")
def compose_text() -> str:
    return (DEPLOY / "compose.yaml").read_text()


@pytest.fixture(scope="session")
def compose(compose_text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compose_text)
    return loaded
