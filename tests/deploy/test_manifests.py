"""deploy/k8s: the rendered manifests are valid Kubernetes objects and run every process safely.

Rendered with `kubectl kustomize` (tests/deploy/conftest.py), validated
with the JSON schemas bundled in the `kubernetes-validate` package (strict: unknown fields are
errors), then checked for what the schemas cannot see: names, selectors, references, probes,
autoscaling, disruption budgets, network isolation, the migration Job and the production overlay.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from stockmanager import registry
from tests.deploy.conftest import (
    K8S,
    PROCESSES,
    PRODUCTION,
    SERVICES,
    KustomizeError,
    production_secrets_env,
    render,
)

# Oldest supported cluster version, and the newest the installed kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
NAMESPACE = "stockmanager"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


# --- helpers ---------------------------------------------------------------------------------


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (only,) = by_kind(objects, kind).values()
    return only


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (an empty selector matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def port_allowed(rule_ports: list[dict[str, Any]] | None, port: int, protocol: str = "TCP") -> bool:
    if not rule_ports:  # no ports: every port
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        low = entry["port"]
        if low <= port <= entry.get("endPort", low):
            return True
    return False


def policies_selecting(
    objects: list[dict[str, Any]], labels: dict[str, str], policy_type: str
) -> list[dict[str, Any]]:
    return [
        policy
        for policy in by_kind(objects, "NetworkPolicy").values()
        if selector_matches(policy["spec"]["podSelector"], labels)
        and policy_type in policy["spec"].get("policyTypes", ["Ingress"])
    ]


def all_pod_labels(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    workloads = {**by_kind(objects, "Deployment"), **by_kind(objects, "Job")}
    return {name: pod_labels(w) for name, w in workloads.items()}


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


@pytest.fixture(scope="module", params=["base", "production"])
def rendered(
    request: pytest.FixtureRequest,
    base_objects: list[dict[str, Any]],
    production_objects: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return base_objects if request.param == "base" else production_objects


# --- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates_against_the_kubernetes_schema(
    rendered: list[dict[str, Any]], version: str
) -> None:
    failures = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(exc.message)
    assert not failures, "\n".join(failures)


def test_schema_validation_is_strict(base_objects: list[dict[str, Any]]) -> None:
    """A misspelt field is an error, not silently ignored (as kubectl apply would drop it)."""
    deployment = copy.deepcopy(by_kind(base_objects, "Deployment")["products"])
    container = pod_spec(deployment)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_names_labels_and_quantities_are_well_formed(rendered: list[dict[str, Any]]) -> None:
    # The JSON schemas do not check these formats; the API server would.
    for obj in rendered:
        meta = obj["metadata"]
        name_pattern = (
            DNS1123_LABEL if obj["kind"] in ("Service", "Namespace") else DNS1123_SUBDOMAIN
        )
        assert name_pattern.match(meta["name"]), meta["name"]
        if obj["kind"] != "Namespace":
            assert meta["namespace"] == NAMESPACE, obj["kind"] + "/" + meta["name"]
        for key, value in (meta.get("labels") or {}).items():
            assert LABEL_VALUE.match(value), (key, value)
    for workload in [*by_kind(rendered, "Deployment").values(), *by_kind(rendered, "Job").values()]:
        for container in containers(workload):
            for section in ("requests", "limits"):
                for quantity in container["resources"][section].values():
                    assert QUANTITY.match(str(quantity)), quantity


# --- every process -----------------------------------------------------------------------------


def test_process_list_matches_the_runtime_registry() -> None:
    assert {p.name: p.port for p in registry.PROCESSES} == PROCESSES


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_process_has_deployment_service_probes_hpa_and_pdb(
    rendered: list[dict[str, Any]], process: str
) -> None:
    port = PROCESSES[process]
    deployment = by_kind(rendered, "Deployment")[process]
    service = by_kind(rendered, "Service")[process]
    hpa = by_kind(rendered, "HorizontalPodAutoscaler")[process]
    pdb = by_kind(rendered, "PodDisruptionBudget")[process]
    labels = pod_labels(deployment)

    (container,) = pod_spec(deployment)["containers"]
    assert container["args"] == ["serve", process]
    ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    # The gateway answers /readyz (and /metrics) only on its internal listener.
    ready_port = "internal" if process == "gateway" else "http"
    if process == "gateway":
        ports.append({"name": "internal", "containerPort": 5090, "protocol": "TCP"})
    assert container["ports"] == ports
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ready_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}

    # The API server rejects a Deployment whose selector does not match its pod template.
    assert selector_matches(deployment["spec"]["selector"], labels)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"

    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {
            "name": "http",
            "port": port,
            "targetPort": "http",
            "protocol": "TCP",
            "appProtocol": "http",
        }
    ]

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": process,
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"

    assert pdb["apiVersion"] == "policy/v1"
    assert selector_matches(pdb["spec"]["selector"], labels)
    # With at least two replicas, a budget of one unavailable pod never blocks a node drain.
    assert pdb["spec"]["maxUnavailable"] == 1

    # No other process's pods are selected by this process's Service or budget.
    for other, other_labels in all_pod_labels(rendered).items():
        if other != process:
            assert not selector_matches({"matchLabels": service["spec"]["selector"]}, other_labels)
            assert not selector_matches(pdb["spec"]["selector"], other_labels)


def test_nothing_but_the_processes_and_the_migration_job_runs(
    rendered: list[dict[str, Any]],
) -> None:
    assert set(by_kind(rendered, "Deployment")) == set(PROCESSES)
    assert set(by_kind(rendered, "Service")) == set(PROCESSES)
    assert set(by_kind(rendered, "HorizontalPodAutoscaler")) == set(PROCESSES)
    assert set(by_kind(rendered, "PodDisruptionBudget")) == set(PROCESSES)
    assert set(by_kind(rendered, "Job")) == {"stockmanager-migrate"}
    assert not by_kind(rendered, "StatefulSet"), "state lives in PostgreSQL and Redis"


def test_pods_are_hardened(rendered: list[dict[str, Any]]) -> None:
    """Non-root, read-only root filesystem with a /tmp emptyDir, "restricted" Pod Security."""
    namespace = one(rendered, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in [*by_kind(rendered, "Deployment").values(), *by_kind(rendered, "Job").values()]:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["serviceAccountName"] == "stockmanager", name
        assert 5 <= spec["terminationGracePeriodSeconds"] <= 120, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], name
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where


# --- configuration and secrets ---------------------------------------------------------------


def test_config_and_secret_references_resolve(rendered: list[dict[str, Any]]) -> None:
    config_maps = by_kind(rendered, "ConfigMap")
    secrets = by_kind(rendered, "Secret")
    # Generated names carry kustomize's content hash, so a change rolls the pods.
    assert [re.sub(r"-[a-z0-9]{10}$", "", n) for n in config_maps] == ["stockmanager-config"]
    assert [re.sub(r"-[a-z0-9]{10}$", "", n) for n in secrets] == ["stockmanager-secrets"]
    for workload in [*by_kind(rendered, "Deployment").values(), *by_kind(rendered, "Job").values()]:
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for env in container.get("env", []):
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] in secrets
                assert ref.get("optional") or ref["key"] in secrets[ref["name"]]["data"], ref


def env_of(workload: dict[str, Any], container_name: str) -> set[str]:
    (container,) = [c for c in containers(workload) if c["name"] == container_name]
    return {e["name"] for e in container.get("env", [])}


def test_each_process_gets_only_the_secrets_it_needs(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert env_of(deployments["gateway"], "gateway") == {
        "REDIS_URL",
        "STOCKMANAGER_INTERNAL_SECRET",
    }
    for service in SERVICES:
        expected = {"DATABASE_URL", "REDIS_URL", "STOCKMANAGER_INTERNAL_SECRET"}
        if service == "users":
            expected.add("STOCKMANAGER_SMTP_PASSWORD")
        assert env_of(deployments[service], service) == expected
    job = by_kind(rendered, "Job")["stockmanager-migrate"]
    assert "STOCKMANAGER_ROOT_PASSWORD" in env_of(job, "bootstrap-root")
    assert "STOCKMANAGER_ROOT_PASSWORD" not in env_of(job, "migrate")
    config = one(rendered, "ConfigMap")["data"]
    secret_names = {
        "DATABASE_URL",
        "REDIS_URL",
        "STOCKMANAGER_INTERNAL_SECRET",
        "STOCKMANAGER_ROOT_PASSWORD",
        "STOCKMANAGER_SMTP_PASSWORD",
    }
    assert not secret_names & set(config), "secrets must not be in the ConfigMap"


def test_gateway_reaches_each_service_through_its_service_object(
    rendered: list[dict[str, Any]],
) -> None:
    config = one(rendered, "ConfigMap")["data"]
    services = by_kind(rendered, "Service")
    for info in registry.SERVICES:
        url = config[info.url_setting]
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
        assert match, url
        service = services[match.group(1)]
        assert service["metadata"]["name"] == info.name
        assert service["spec"]["ports"][0]["port"] == int(match.group(2)) == info.port
    assert config["STOCKMANAGER_COOKIE_SECURE"] == "true"  # behind the TLS Ingress
    assert config["STOCKMANAGER_TIMEZONE"] == "America/Argentina/Buenos_Aires"


# --- network ---------------------------------------------------------------------------------


def service_ingress_violations(objects: list[dict[str, Any]]) -> list[str]:
    """Why the NetworkPolicies would let anything but the gateway into a service (none: [])."""
    problems = []
    pods = all_pod_labels(objects)
    if not any(
        selector_matches(p["spec"]["podSelector"], {}) and not p["spec"].get("ingress")
        for p in by_kind(objects, "NetworkPolicy").values()
    ):
        problems.append("no default-deny policy selects every pod")
    for service in SERVICES:
        policies = policies_selecting(objects, pods[service], "Ingress")
        rules = [rule for p in policies for rule in p["spec"].get("ingress", [])]
        admits_gateway = False
        for rule in rules:
            if not rule.get("from"):
                problems.append(f"{service}: a rule without `from` admits every source")
                continue
            for peer in rule["from"]:
                if set(peer) != {"podSelector"}:
                    problems.append(f"{service}: peer {peer} reaches beyond this namespace's pods")
                    continue
                admitted = [
                    n for n, labels in pods.items() if selector_matches(peer["podSelector"], labels)
                ]
                if admitted != ["gateway"]:
                    problems.append(f"{service}: admits {admitted}")
            admits_gateway |= port_allowed(rule.get("ports"), PROCESSES[service])
        if not admits_gateway:
            problems.append(f"{service}: the gateway cannot reach port {PROCESSES[service]}")
    return problems


def test_network_policy_admits_only_the_gateway_into_services(
    rendered: list[dict[str, Any]],
) -> None:
    assert service_ingress_violations(rendered) == []

    pods = all_pod_labels(rendered)
    gateway = pods["gateway"]
    gateway_egress = [
        rule
        for p in policies_selecting(rendered, gateway, "Egress")
        for rule in p["spec"].get("egress", [])
    ]
    for service in SERVICES:
        assert any(
            port_allowed(rule.get("ports"), PROCESSES[service])
            and any(
                selector_matches(peer.get("podSelector", {}), pods[service])
                for peer in rule.get("to", [])
            )
            for rule in gateway_egress
        ), f"gateway egress to {service}"

    gateway_ingress = [
        rule
        for p in policies_selecting(rendered, gateway, "Ingress")
        for rule in p["spec"].get("ingress", [])
    ]
    assert any(port_allowed(rule.get("ports"), 5000) for rule in gateway_ingress)


@pytest.mark.parametrize(
    "extra_rule",
    [
        {},  # any source
        {"from": [{"namespaceSelector": {}}]},  # any pod in any namespace
        {"from": [{"podSelector": {}}]},  # any pod here, e.g. another service
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
    ],
)
def test_the_isolation_check_catches_a_widened_policy(
    base_objects: list[dict[str, Any]], extra_rule: dict[str, Any]
) -> None:
    widened = copy.deepcopy(base_objects)
    policy = by_kind(widened, "NetworkPolicy")["services-from-gateway-only"]
    policy["spec"]["ingress"].append(extra_rule)
    assert service_ingress_violations(widened)


def test_every_pod_may_reach_dns_postgres_and_redis(rendered: list[dict[str, Any]]) -> None:
    for name, labels in all_pod_labels(rendered).items():
        rules = [
            rule
            for p in policies_selecting(rendered, labels, "Egress")
            for rule in p["spec"].get("egress", [])
        ]
        for port, protocol in ((53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP")):
            assert any(port_allowed(r.get("ports"), port, protocol) for r in rules), (name, port)
        # Services never call each other; only the gateway opens connections to them.
        if name != "gateway":
            for service in SERVICES:
                assert not any(
                    port_allowed(r.get("ports"), PROCESSES[service])
                    and any(
                        selector_matches(
                            peer.get("podSelector", {}), all_pod_labels(rendered)[service]
                        )
                        for peer in r.get("to", [])
                    )
                    for r in rules
                ), (name, service)


def test_ingress_routes_to_the_gateway_and_suits_server_sent_events(
    rendered: list[dict[str, Any]],
) -> None:
    ingress = one(rendered, "Ingress")  # the only public entry
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/api", "Prefix")  # never the internal routes
    assert path["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


# --- migration Job ---------------------------------------------------------------------------


def test_migration_job_migrates_then_bootstraps_root(rendered: list[dict[str, Any]]) -> None:
    job = by_kind(rendered, "Job")["stockmanager-migrate"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert [c["args"] for c in spec["initContainers"]] == [["migrate"]]
    assert [c["args"] for c in spec["containers"]] == [["bootstrap-root"]]
    assert job["spec"]["backoffLimit"] >= 1
    assert job["metadata"]["labels"]["stockmanager/apply-phase"] == "pre-rollout"
    # Everything the Job needs is in the first apply phase (docs/operations.md).
    phase = {
        (o["kind"], o["metadata"]["name"])
        for o in rendered
        if o["metadata"].get("labels", {}).get("stockmanager/apply-phase") == "pre-rollout"
    }
    config, secret = one(rendered, "ConfigMap"), one(rendered, "Secret")
    assert phase == {
        ("Namespace", NAMESPACE),
        ("ServiceAccount", "stockmanager"),
        ("ConfigMap", config["metadata"]["name"]),
        ("Secret", secret["metadata"]["name"]),
        ("Job", "stockmanager-migrate"),
    }


# --- base vs production ----------------------------------------------------------------------


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_base_secret_values_are_marked_placeholders(base_objects: list[dict[str, Any]]) -> None:
    values = decoded(one(base_objects, "Secret"))
    assert set(values) == set(production_secrets_env())
    assert all("CHANGE-ME" in value for value in values.values()), values


def test_production_secret_comes_entirely_from_secrets_env(
    production_objects: list[dict[str, Any]],
) -> None:
    assert decoded(one(production_objects, "Secret")) == production_secrets_env()
    assert not any("CHANGE-ME" in s for s in walk_strings(production_objects))


def test_production_secrets_example_lists_every_key() -> None:
    example = (K8S / PRODUCTION / "secrets.env.example").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in example if line and not line.startswith("#")}
    assert keys == set(production_secrets_env())


def test_production_does_not_render_without_its_secrets_file(tmp_path: Path) -> None:
    shutil.copytree(K8S, tmp_path / "k8s", ignore=shutil.ignore_patterns("secrets.env"))
    with pytest.raises(KustomizeError, match=r"secrets\.env"):
        render(tmp_path / "k8s" / PRODUCTION)


def test_production_overlay_sets_image_replicas_and_origins(
    base_objects: list[dict[str, Any]],
    production_objects: list[dict[str, Any]],
) -> None:
    images = {
        c["image"]
        for w in [
            *by_kind(production_objects, "Deployment").values(),
            *by_kind(production_objects, "Job").values(),
        ]
        for c in containers(w)
    }
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"[a-z0-9.-]+(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+", image), image
    assert {
        c["image"] for w in by_kind(base_objects, "Deployment").values() for c in containers(w)
    } == {"stockmanager"}

    hpas = by_kind(production_objects, "HorizontalPodAutoscaler")
    assert all(h["spec"]["minReplicas"] >= 3 for h in hpas.values())
    assert hpas["gateway"]["spec"]["maxReplicas"] > hpas["products"]["spec"]["maxReplicas"]

    config = one(production_objects, "ConfigMap")["data"]
    host = one(production_objects, "Ingress")["spec"]["rules"][0]["host"]
    assert config["STOCKMANAGER_ALLOWED_ORIGINS"] == f"https://{host}"
    assert config["STOCKMANAGER_TRUSTED_PROXIES"]
    # Merged, not replaced: the base keys are still there.
    assert set(one(base_objects, "ConfigMap")["data"]) < set(config)

    gateway_policy = by_kind(production_objects, "NetworkPolicy")["gateway"]
    assert gateway_policy["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
