"""checkov over what ships: the rendered production manifests and the Dockerfile.

checkov runs from its own environment (.venv/checkov, the `checkov` dependency group in
pyproject.toml; `make test` installs it) because it pins packaging<24. Every finding fails the
test unless it is listed in ACCEPTED below, with the reason it does not apply, for the resources
it is accepted on (nothing is skipped globally, and nothing is downloaded: --skip-download).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import PROCESSES, REPO, effective_dockerfile, require_tool

# The workloads running the StockManager image (each Deployment and the migration Job).
IMAGE_WORKLOADS = frozenset(
    {
        *(f"Deployment.stockmanager.{name}" for name in PROCESSES),
        "Job.stockmanager.stockmanager-migrate",
    }
)

# check id -> (reason it does not apply, the resources it is accepted on)
ACCEPTED: dict[str, tuple[str, frozenset[str]]] = {
    "CKV_K8S_35": (
        "Secrets as environment variables: every process reads its settings (DATABASE_URL, "
        "REDIS_URL, the internal secret…) from the environment only (stockmanager/settings.py); "
        "each container gets only the keys it needs (secretKeyRef), never the whole Secret.",
        IMAGE_WORKLOADS,
    ),
    "CKV_K8S_43": (
        "Image by digest: the image is the operator's own build, unknown here; the overlay's "
        "`images:` entry carries its tag, and `digest: sha256:<pushed digest>` there (or "
        "`kustomize edit set image stockmanager=<registry>/stockmanager@sha256:<digest>`) pins "
        "it. The base image inside it is pinned by digest (deploy/Dockerfile, make image-pin).",
        IMAGE_WORKLOADS,
    ),
    "CKV_K8S_15": (
        "imagePullPolicy Always: with an immutable tag or a digest, IfNotPresent pulls exactly "
        "the same image, and a node can restart pods while the registry is unreachable.",
        IMAGE_WORKLOADS,
    ),
}


def checkov() -> str:
    return require_tool(
        "checkov",
        "checkov is not installed (`make test` installs it into .venv/checkov)",
        REPO / ".venv" / "checkov" / "bin" / "checkov",
    )


def run_checkov(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [checkov(), *args, "--skip-download", "--quiet", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: there are failed checks
    report = json.loads(result.stdout)
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    return reports


@pytest.fixture(scope="module")
def checkov_reports(
    tmp_path_factory: pytest.TempPathFactory, production_objects: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("checkov")
    manifests = directory / "production.yaml"
    manifests.write_text(yaml.safe_dump_all(production_objects, sort_keys=False))
    dockerfile = effective_dockerfile(directory / "Dockerfile")
    reports = run_checkov(
        "--file", str(manifests), "--file", str(dockerfile),
        "--framework", "kubernetes", "dockerfile",
    )  # fmt: skip
    return {report["check_type"]: report for report in reports}


def failures(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["check_id"], f["resource"]) for f in report["results"].get("failed_checks", [])]


def test_checkov_parses_everything(checkov_reports: dict[str, dict[str, Any]]) -> None:
    assert set(checkov_reports) == {"kubernetes", "dockerfile"}
    kubernetes = checkov_reports["kubernetes"]["summary"]
    assert kubernetes["parsing_errors"] == 0
    assert kubernetes["resource_count"] >= len(IMAGE_WORKLOADS)
    assert kubernetes["passed"] > 100, kubernetes
    assert checkov_reports["dockerfile"]["summary"]["parsing_errors"] == 0


def test_production_manifests_pass_checkov(checkov_reports: dict[str, dict[str, Any]]) -> None:
    unexpected = [
        (check, resource)
        for check, resource in failures(checkov_reports["kubernetes"])
        if check not in ACCEPTED or resource not in ACCEPTED[check][1]
    ]
    assert unexpected == [], "fix these, or accept them in ACCEPTED with a reason"


def test_dockerfile_passes_checkov(checkov_reports: dict[str, dict[str, Any]]) -> None:
    assert failures(checkov_reports["dockerfile"]) == []
    assert checkov_reports["dockerfile"]["summary"]["passed"] > 0


def test_checkov_catches_an_unsafe_pod(tmp_path: Path) -> None:
    """The gate is live: a privileged, root, unbounded container is reported."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unsafe", "namespace": "stockmanager"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    (report,) = run_checkov("--file", str(manifest), "--framework", "kubernetes")
    found = {check for check, _ in failures(report)}
    assert {"CKV_K8S_16", "CKV_K8S_43"} <= found, found  # privileged; image without digest
