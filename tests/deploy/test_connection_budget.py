"""The PostgreSQL connection budget of the production overlay, computed from the rendered
manifests (docs/operations.md, Scaling, "Database connections"):

    connections = Σ over Deployments of (HPA maxReplicas + rolling-update surge)
                      × (pool_size + max_overflow [+ checkout_pool_size for sales])
                  + one per migration Job container
                  + superuser_reserved_connections + operators' headroom
                ≤ max_connections

Each pod's pool sizes are read the way the process reads them: its service's settings class,
built from the pod's environment (ConfigMap `envFrom`, then `env`), code defaults for the rest.
README.md and docs/operations.md must quote the code's defaults."""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from stockmanager import registry
from stockmanager.settings import DEFAULT_DB_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE, KernelSettings
from tests.deploy.conftest import REPO

# The budget the production overlay is sized for (stated in docs/operations.md).
MAX_CONNECTIONS = 200
# PostgreSQL's default: connections only superusers may use (the application role may not).
SUPERUSER_RESERVED = 3
# psql sessions, pg_dump, a monitoring exporter.
OPERATORS = 10

POOL_VARIABLES = (
    "STOCKMANAGER_DB_POOL_SIZE",
    "STOCKMANAGER_DB_MAX_OVERFLOW",
    "STOCKMANAGER_CHECKOUT_POOL_SIZE",
    "STOCKMANAGER_WEBHOOKS_DB_POOL_SIZE",
    "STOCKMANAGER_WEBHOOKS_DB_MAX_OVERFLOW",
)
SERVICE_NAMES = {info.name for info in registry.SERVICES}


def settings_class(service: str) -> type[KernelSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, KernelSettings)
        and value.__module__ == module.__name__
    ]
    assert len(found) == 1, (service, found)
    return found[0]


def per_process(service: str, environment: dict[str, str], monkeypatch: Any) -> int:
    """The most PostgreSQL connections one process of `service` opens with this environment."""
    with monkeypatch.context() as patch:
        for variable in POOL_VARIABLES:
            patch.delenv(variable, raising=False)
        for key, value in environment.items():
            if key in POOL_VARIABLES:
                patch.setenv(key, value)
        settings: BaseSettings = settings_class(service)()
    total = int(settings.db_pool_size) + int(settings.db_max_overflow)
    # The sales checkout pool (psycopg, services/sales/checkout.py) is a second pool.
    return total + int(getattr(settings, "checkout_pool_size", 0))


def by_kind(objects: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (obj for obj in objects if obj["kind"] == kind)


def environment(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """A container's literal environment: `envFrom` ConfigMaps in order, then `env` values."""
    maps = {obj["metadata"]["name"]: obj.get("data") or {} for obj in by_kind(objects, "ConfigMap")}
    result: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref is not None:
            result.update({str(k): str(v) for k, v in maps[ref["name"]].items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            result[entry["name"]] = str(entry["value"])
        else:
            result.pop(entry["name"], None)  # from a Secret: never a pool size here
    return result


def served_process(container: dict[str, Any]) -> str | None:
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if "serve" in words and words.index("serve") + 1 < len(words):
        return str(words[words.index("serve") + 1])
    return None


def max_pods(deployment: dict[str, Any], objects: list[dict[str, Any]]) -> int:
    """Pods of a Deployment at its HPA's maximum, plus the extra pod(s) a rollout adds."""
    name = deployment["metadata"]["name"]
    hpas = [
        hpa
        for hpa in by_kind(objects, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        and hpa["spec"]["scaleTargetRef"]["name"] == name
    ]
    if hpas:
        replicas = max(int(hpa["spec"]["maxReplicas"]) for hpa in hpas)
    else:
        replicas = int(deployment["spec"].get("replicas", 1))
    strategy = deployment["spec"].get("strategy") or {}
    surge: int | str = 0
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        surge = math.ceil(replicas * int(surge[:-1]) / 100)
    return replicas + int(surge)


def budget(objects: list[dict[str, Any]], monkeypatch: Any) -> dict[str, int]:
    """Connections at HPA maximum, per Deployment, plus the migration Jobs and the reserve."""
    lines: dict[str, int] = {}
    for deployment in by_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        pods = max_pods(deployment, objects)
        per_pod = 0
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            process = served_process(container)
            env = environment(container, objects)
            if process in SERVICE_NAMES:
                per_pod += per_process(process, env, monkeypatch)
            else:
                # The gateway (or a sidecar) has no database pool: it must not get a database.
                assert not any(e["name"] == "DATABASE_URL" for e in container.get("env") or []), (
                    f"{name}/{container['name']} can reach PostgreSQL outside the budget"
                )
        # initContainers (wait-for-schema: `migrate --check`) finish before the pod's pools open,
        # so a starting pod never holds both: its pools are what the budget counts.
        lines[f"deployment/{name}"] = pods * per_pod
    for job in by_kind(objects, "Job"):
        spec = job["spec"]["template"]["spec"]
        containers = [*(spec.get("initContainers") or []), *spec["containers"]]
        lines[f"job/{job['metadata']['name']}"] = len(containers)  # one connection each
    lines["superuser_reserved_connections"] = SUPERUSER_RESERVED
    lines["operators"] = OPERATORS
    return lines


def test_production_at_hpa_maximum_fits_max_connections(
    production_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = budget(production_objects, monkeypatch)
    services = {f"deployment/{name}" for name in SERVICE_NAMES}
    assert services <= set(lines), "every service Deployment is counted"
    assert all(lines[name] > 0 for name in services)
    total = sum(lines.values())
    assert total <= MAX_CONNECTIONS, (
        f"{total} connections > max_connections {MAX_CONNECTIONS}: {lines}"
    )


def test_the_code_defaults_would_not_fit(
    production_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The computation sees the overlay's settings: without them (code defaults, 8 + 2 and a
    checkout pool of 12) the same replica bounds far exceed the budget."""
    stripped = []
    for obj in production_objects:
        if obj["kind"] == "ConfigMap":
            data = {k: v for k, v in (obj.get("data") or {}).items() if k not in POOL_VARIABLES}
            obj = {**obj, "data": data}
        if obj["kind"] == "Deployment":
            spec = obj["spec"]["template"]["spec"]
            containers = [
                {
                    **c,
                    "env": [e for e in c.get("env") or [] if e["name"] not in POOL_VARIABLES],
                }
                for c in spec["containers"]
            ]
            obj = {
                **obj,
                "spec": {
                    **obj["spec"],
                    "template": {
                        **obj["spec"]["template"],
                        "spec": {**spec, "containers": containers},
                    },
                },
            }
        stripped.append(obj)
    assert sum(budget(stripped, monkeypatch).values()) > MAX_CONNECTIONS


def test_docs_state_the_budget_and_formula() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    assert f"`max_connections` = {MAX_CONNECTIONS}" in text
    assert f"superuser_reserved_connections` ({SUPERUSER_RESERVED})" in text
    assert f"{OPERATORS} for operators" in text
    assert "Σ over Deployments" in text
    assert "tests/deploy/test_connection_budget.py" in text


def table_values(path: str, variable: str) -> list[str]:
    """The default column (third) of every table row naming `variable` in a doc."""
    values = []
    for line in (REPO / path).read_text().splitlines():
        if line.startswith(f"| `{variable}` |"):
            values.append(line.split("|")[3].strip().strip("`"))
    assert values, f"{path} has no row for {variable}"
    return values


def test_docs_quote_the_code_defaults() -> None:
    from services.sales.settings import SalesSettings

    checkout = SalesSettings.model_fields["checkout_pool_size"].default
    expected = {
        "STOCKMANAGER_DB_POOL_SIZE": DEFAULT_DB_POOL_SIZE,
        "STOCKMANAGER_DB_MAX_OVERFLOW": DEFAULT_DB_MAX_OVERFLOW,
        "STOCKMANAGER_CHECKOUT_POOL_SIZE": checkout,
    }
    assert KernelSettings.model_fields["db_pool_size"].default == DEFAULT_DB_POOL_SIZE
    assert KernelSettings.model_fields["db_max_overflow"].default == DEFAULT_DB_MAX_OVERFLOW
    for variable, value in expected.items():
        assert table_values("docs/operations.md", variable) == [str(value)], variable
    readme = (REPO / "README.md").read_text()
    assert (
        f"| `STOCKMANAGER_DB_POOL_SIZE` / `_DB_MAX_OVERFLOW` | "
        f"`{DEFAULT_DB_POOL_SIZE}` / `{DEFAULT_DB_MAX_OVERFLOW}` |" in readme
    )
    assert f"| `STOCKMANAGER_CHECKOUT_POOL_SIZE` | `{checkout}` |" in readme
    # No page still quotes the old 4 + 4.
    for page in ("README.md", "docs/operations.md", "docs/api/products.md"):
        assert "4 + 4" not in (REPO / page).read_text(), page
