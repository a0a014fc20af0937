"""Fixtures for the deployment tests: rendered Kubernetes manifests, the compose file.

Everything here is offline and needs no database: the manifests are rendered by the real
kustomize (`kubectl kustomize DIR`, built into kubectl) and validated with bundled schemas.
Without kubectl the tests that render skip, except under CI=true, where kubectl is part of the
machine image and its absence is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    "webhooks": 5107,
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


class KustomizeError(RuntimeError):
    """`kubectl kustomize` refused to render a directory (its message is kubectl's stderr)."""


def require_tool(name: str, missing: str, *candidates: Path) -> str:
    """An executable: the first existing candidate, else `name` on PATH. Without it the calling
    test skips with `missing` as the reason, except under CI=true, where it fails."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} (CI=true: the machine image and `make test` provide it)")
        pytest.skip(missing)
    return found


def effective_dockerfile(target: Path) -> Path:
    """deploy/Dockerfile written to `target` with the base image ARG's default in its FROM lines.

    Neither hadolint nor checkov looks through `FROM ${PYTHON_IMAGE}`: on this copy their base
    image rules (a tag or digest, never `latest`) judge the reference a default build uses.
    """
    text = (DEPLOY / "Dockerfile").read_text()
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    target.write_text(text.replace("${PYTHON_IMAGE}", default))
    return target


def kubectl() -> str:
    return require_tool(
        "kubectl", "kubectl (with kustomize built in) is not installed: cannot render deploy/k8s"
    )


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`, parsed: one dict per rendered object, in kustomize's order."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise KustomizeError(result.stderr.strip() or f"kubectl exited {result.returncode}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


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
