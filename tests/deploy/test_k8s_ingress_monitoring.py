"""deploy/k8s: public entry (Ingress, Gateway API), NetworkPolicy ports, monitoring, migrations.

Rendered with the real kustomize (tests/deploy/conftest.py). The Gateway API and Prometheus
Operator objects are custom resources that kubernetes-validate does not know: they are checked
against JSON schemas written here for the fields the manifests use (strict: an unknown or
misspelt field is an error, as the API server's structural schema would prune or refuse it),
plus the rules the CRDs enforce with CEL or that Prometheus applies when it loads the rules.
PromQL is parsed with `promql-parser` (the Rust parser of GreptimeDB), and every metric an alert
or a dashboard panel reads must be one the code defines (collected from prometheus_client's
registry after importing every module that defines metrics).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
from prometheus_client import REGISTRY

from gateway.settings import GatewaySettings
from services.notifications.settings import NotificationsSettings
from stockmanager import registry
from tests.deploy.conftest import K8S, PROCESSES, REPO, SERVICES, render

GATEWAY_INTERNAL_PORT = 5090
MONITORING_NAMESPACE = "monitoring"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
STREAM_PATH = "/api/notifications/stream"
CUSTOM_GROUPS = {"gateway.networking.k8s.io", "monitoring.coreos.com"}

# --- helpers ---------------------------------------------------------------------------------


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {**by_kind(objects, "Deployment"), **by_kind(objects, "Job")}


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def named_ports(workload: dict[str, Any]) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for container in workload["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    }


def ingress_rules(
    objects: list[dict[str, Any]], labels: dict[str, str]
) -> Iterator[dict[str, Any]]:
    for policy in by_kind(objects, "NetworkPolicy").values():
        spec = policy["spec"]
        if "Ingress" in spec.get("policyTypes", ["Ingress"]) and selector_matches(
            spec["podSelector"], labels
        ):
            yield from spec.get("ingress", [])


def rule_ports(rule: dict[str, Any]) -> set[int]:
    return {entry["port"] for entry in rule.get("ports", [])}


def admits_namespace(rule: dict[str, Any], namespace: str) -> bool:
    return any(
        set(peer) == {"namespaceSelector"}
        and peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        for peer in rule.get("from", [])
    )


# --- rendered variants -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_api_objects(k8s_copy: Path) -> list[dict[str, Any]]:
    """overlays/production-gateway-api: production with an HTTPRoute instead of the Ingress."""
    return render(k8s_copy / "overlays" / "production-gateway-api")


@pytest.fixture(scope="module")
def monitored_objects(
    k8s_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """Production plus components/monitoring, as docs/operations.md tells operators to add it."""
    root = tmp_path_factory.mktemp("monitored") / "k8s"
    shutil.copytree(k8s_copy, root)  # with the production secrets.env the fixture wrote
    overlay = root / "overlays" / "monitored"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ../production\ncomponents:\n  - ../../components/monitoring\n"
    )
    return render(overlay)


@pytest.fixture(scope="module", params=["base", "production", "gateway-api", "monitoring"])
def any_render(
    request: pytest.FixtureRequest,
    base_objects: list[dict[str, Any]],
    production_objects: list[dict[str, Any]],
    gateway_api_objects: list[dict[str, Any]],
    monitored_objects: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return {
        "base": base_objects,
        "production": production_objects,
        "gateway-api": gateway_api_objects,
        "monitoring": monitored_objects,
    }[request.param]


def test_built_in_objects_of_the_variants_validate_strictly(
    gateway_api_objects: list[dict[str, Any]], monitored_objects: list[dict[str, Any]]
) -> None:
    failures = []
    for obj in [*gateway_api_objects, *monitored_objects]:
        if obj["apiVersion"].split("/")[0] in CUSTOM_GROUPS:
            continue  # custom resources: checked against the schemas below
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


# --- Ingress (ingress-nginx) -----------------------------------------------------------------


def nginx_size(value: str) -> int:
    """nginx's size syntax (client_max_body_size): bytes, k/K or m/M or g/G, powers of 1024."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    assert match, value
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * unit


@pytest.fixture(params=["base", "production"])
def ingress(
    request: pytest.FixtureRequest,
    base_objects: list[dict[str, Any]],
    production_objects: list[dict[str, Any]],
) -> dict[str, Any]:
    objects = base_objects if request.param == "base" else production_objects
    (only,) = by_kind(objects, "Ingress").values()
    return only


def test_ingress_body_limit_is_the_gateways_import_limit(ingress: dict[str, Any]) -> None:
    settings = GatewaySettings()
    limit = nginx_size(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    )
    # ingress-nginx's default (1m) refused every CSV import over 1 MiB before the gateway saw it.
    assert limit == settings.import_max_body_bytes == 10 * 1024 * 1024
    assert settings.max_body_bytes <= limit  # every other route is held lower by the gateway


def test_ingress_routes_only_the_api_and_keeps_the_stream_open(ingress: dict[str, Any]) -> None:
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/api", "Prefix")]
    assert all(
        p["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}} for p in paths
    )
    assert "defaultBackend" not in ingress["spec"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    heartbeat = NotificationsSettings().sse_heartbeat_seconds
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        # An idle stream sends a heartbeat every 25 s: the proxy must wait for longer than that.
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > heartbeat


def test_body_size_parser() -> None:
    assert nginx_size("10m") == 10_485_760
    assert nginx_size("1024") == 1024
    assert nginx_size("2K") == 2048


# --- Gateway API variant ---------------------------------------------------------------------

GATEWAY_DURATION = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"  # GEP-2257, as in the CRD
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
GROUP = r"^$|" + DNS_SUBDOMAIN[1:]
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _metadata_schema(namespaced: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "namespace"] if namespaced else ["name"],
        "properties": {
            "name": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253},
            "namespace": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 63},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }


# gateway.networking.k8s.io/v1 HTTPRoute, the fields this deployment uses (standard channel).
HTTPROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": _metadata_schema(),
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["parentRefs", "rules"],
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "group": {"type": "string", "pattern": GROUP, "maxLength": 253},
                            "kind": {
                                "type": "string",
                                "pattern": r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$",
                            },
                            "namespace": {
                                "type": "string",
                                "pattern": DNS_SUBDOMAIN,
                                "maxLength": 63,
                            },
                            "name": {"type": "string", "minLength": 1, "maxLength": 253},
                            "sectionName": {
                                "type": "string",
                                "pattern": DNS_SUBDOMAIN,
                                "maxLength": 253,
                            },
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        },
                    },
                },
                "hostnames": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {"type": "string", "pattern": HOSTNAME, "maxLength": 253},
                },
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {
                                                    "enum": [
                                                        "Exact",
                                                        "PathPrefix",
                                                        "RegularExpression",
                                                    ]
                                                },
                                                "value": {
                                                    "type": "string",
                                                    "pattern": "^/",
                                                    "maxLength": 1024,
                                                },
                                            },
                                        },
                                        "method": {
                                            "enum": [
                                                "GET",
                                                "HEAD",
                                                "POST",
                                                "PUT",
                                                "DELETE",
                                                "CONNECT",
                                                "OPTIONS",
                                                "TRACE",
                                                "PATCH",
                                            ]
                                        },
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "maxItems": 16,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["name"],
                                    "properties": {
                                        "group": {"type": "string", "pattern": GROUP},
                                        "kind": {"type": "string"},
                                        "name": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 253,
                                        },
                                        "namespace": {"type": "string", "pattern": DNS_SUBDOMAIN},
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "weight": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "maximum": 1000000,
                                        },
                                    },
                                },
                            },
                            "timeouts": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "request": {"type": "string", "pattern": GATEWAY_DURATION},
                                    "backendRequest": {
                                        "type": "string",
                                        "pattern": GATEWAY_DURATION,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def gateway_seconds(duration: str) -> float:
    """A GEP-2257 duration (e.g. "1h5m", "500ms") in seconds."""
    assert re.fullmatch(GATEWAY_DURATION, duration), duration
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * scale[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", duration))


def httproute_problems(route: dict[str, Any]) -> list[str]:
    """The CRD's OpenAPI schema (above) plus its CEL rules for the fields used here."""
    problems = [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft202012Validator(HTTPROUTE_SCHEMA).iter_errors(route)
    ]
    for rule in route.get("spec", {}).get("rules", []):
        for ref in rule.get("backendRefs", []):
            if (
                ref.get("group", "") == ""
                and ref.get("kind", "Service") == "Service"
                and "port" not in ref
            ):
                problems.append(f"backendRef {ref['name']}: a Service reference needs a port")
        timeouts = rule.get("timeouts", {})
        if "request" in timeouts and "backendRequest" in timeouts:
            request = gateway_seconds(timeouts["request"])
            if request and gateway_seconds(timeouts["backendRequest"]) > request:
                problems.append("timeouts.backendRequest must be <= timeouts.request")
        for match in rule.get("matches", []):
            value = match.get("path", {}).get("value", "/")
            if re.search(r"//|/\./|/\.\./|%2[fF]|#", value) or value.endswith(("/.", "/..")):
                problems.append(f"path {value!r} is not a normalised path")
    return problems


def the_route(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (route,) = by_kind(objects, "HTTPRoute").values()
    return route


def test_gateway_api_variant_replaces_the_ingress_with_a_valid_httproute(
    gateway_api_objects: list[dict[str, Any]], production_objects: list[dict[str, Any]]
) -> None:
    assert not by_kind(gateway_api_objects, "Ingress"), "the Ingress must go (ingress-nginx is EOL)"
    route = the_route(gateway_api_objects)
    assert httproute_problems(route) == []
    assert route["metadata"]["namespace"] == "stockmanager"

    # Everything else is production's, unchanged but for the gateway's NetworkPolicy source.
    def keys(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in objects}

    assert keys(gateway_api_objects) - keys(production_objects) == {("HTTPRoute", "gateway")}
    assert keys(production_objects) - keys(gateway_api_objects) == {("Ingress", "gateway")}
    for obj in gateway_api_objects:
        if obj["kind"] not in ("HTTPRoute", "NetworkPolicy"):
            twin = by_kind(production_objects, obj["kind"])[obj["metadata"]["name"]]
            assert obj == twin, obj["kind"] + "/" + obj["metadata"]["name"]


def test_the_httproute_schema_check_catches_mistakes(
    gateway_api_objects: list[dict[str, Any]],
) -> None:
    route = the_route(gateway_api_objects)
    misspelt = copy.deepcopy(route)
    misspelt["spec"]["rules"][0]["timeout"] = misspelt["spec"]["rules"][0].pop("timeouts")
    assert httproute_problems(misspelt)
    bad_duration = copy.deepcopy(route)
    bad_duration["spec"]["rules"][0]["timeouts"] = {"request": "1.5s"}
    assert httproute_problems(bad_duration)
    inverted = copy.deepcopy(route)
    inverted["spec"]["rules"][1]["timeouts"] = {"request": "10s", "backendRequest": "20s"}
    assert httproute_problems(inverted)
    portless = copy.deepcopy(route)
    del portless["spec"]["rules"][0]["backendRefs"][0]["port"]
    assert httproute_problems(portless)


def routed_rule(route: dict[str, Any], path: str) -> dict[str, Any]:
    """The rule a Gateway API implementation picks for `path`: the longest matching prefix."""
    candidates = []
    for rule in route["spec"]["rules"]:
        for match in rule["matches"]:
            prefix = match["path"]["value"]
            if match["path"]["type"] == "PathPrefix" and (
                path == prefix or path.startswith(prefix.rstrip("/") + "/")
            ):
                candidates.append((len(prefix), rule))
            elif match["path"]["type"] == "Exact" and path == prefix:
                candidates.append((10_000, rule))
    assert candidates, f"{path} is not routed"
    return max(candidates, key=lambda c: c[0])[1]


def test_httproute_routes_only_the_api_to_the_gateway_service(
    gateway_api_objects: list[dict[str, Any]], production_objects: list[dict[str, Any]]
) -> None:
    route = the_route(gateway_api_objects)
    services = by_kind(gateway_api_objects, "Service")
    for rule in route["spec"]["rules"]:
        for match in rule["matches"]:
            assert match["path"]["type"] == "PathPrefix"
            assert match["path"]["value"] == "/api" or match["path"]["value"].startswith("/api/")
        for ref in rule["backendRefs"]:
            assert (ref.get("group", ""), ref.get("kind", "Service"), ref["name"]) == (
                "",
                "Service",
                "gateway",
            )
            assert "namespace" not in ref  # same namespace: no ReferenceGrant needed
            assert ref["port"] in {p["port"] for p in services["gateway"]["spec"]["ports"]}
            assert ref["port"] == PROCESSES["gateway"]
    for outside in ("/", "/metrics", "/readyz", "/healthz", "/apiary"):
        with pytest.raises(AssertionError, match="is not routed"):
            routed_rule(route, outside)
    # Same host as the production Ingress and the allowed origin.
    (ingress,) = by_kind(production_objects, "Ingress").values()
    assert route["spec"]["hostnames"] == [rule["host"] for rule in ingress["spec"]["rules"]]
    (parent,) = route["spec"]["parentRefs"]
    assert (parent["group"], parent["kind"]) == ("gateway.networking.k8s.io", "Gateway")


def test_httproute_timeouts_keep_the_stream_open_and_bound_the_rest(
    gateway_api_objects: list[dict[str, Any]],
) -> None:
    route = the_route(gateway_api_objects)
    stream = routed_rule(route, STREAM_PATH)
    # "0s" disables the request timeout (GEP-1742); the stream ends by itself after its lifetime.
    assert stream["timeouts"] == {"request": "0s"}
    for path in ("/api/products/import", "/api/products", "/api/notifications"):
        rule = routed_rule(route, path)
        assert rule is not stream
        request = gateway_seconds(rule["timeouts"]["request"])
        # Longer than the gateway's own upstream timeout (which answers 504 by itself).
        assert request > GatewaySettings().upstream_timeout


def test_gateway_api_variant_admits_the_gateways_data_plane(
    gateway_api_objects: list[dict[str, Any]],
) -> None:
    gateway_pod = pod_labels(by_kind(gateway_api_objects, "Deployment")["gateway"])
    public = [
        r
        for r in ingress_rules(gateway_api_objects, gateway_pod)
        if PROCESSES["gateway"] in rule_ports(r)
    ]
    (parent,) = the_route(gateway_api_objects)["spec"]["parentRefs"]
    assert public and all(admits_namespace(r, parent["namespace"]) for r in public)
    assert not any(admits_namespace(r, "ingress-nginx") for r in public)


# --- NetworkPolicies: explicit ports ---------------------------------------------------------


def test_no_network_policy_uses_a_port_range(any_render: list[dict[str, Any]]) -> None:
    for policy in by_kind(any_render, "NetworkPolicy").values():
        for direction in ("ingress", "egress"):
            for rule in policy["spec"].get(direction, []):
                for entry in rule.get("ports", []):
                    # Several network plugins ignore endPort silently (issue 15).
                    assert "endPort" not in entry, policy["metadata"]["name"]
                    assert isinstance(entry["port"], int), entry


def test_each_service_port_is_listed_for_the_gateway(any_render: list[dict[str, Any]]) -> None:
    service_ports = {PROCESSES[s] for s in SERVICES}
    pods = {name: pod_labels(w) for name, w in workloads(any_render).items()}
    policies = by_kind(any_render, "NetworkPolicy")
    egress = policies["gateway"]["spec"]["egress"]
    assert any(rule_ports(rule) == service_ports for rule in egress)
    for service in SERVICES:
        from_gateway = [
            rule
            for rule in ingress_rules(any_render, pods[service])
            if any(
                "podSelector" in peer and selector_matches(peer["podSelector"], pods["gateway"])
                for peer in rule.get("from", [])
            )
        ]
        assert any(PROCESSES[service] in rule_ports(rule) for rule in from_gateway), service
    # The gateway: its public port, and its internal port (5090: /readyz, /metrics) only from
    # the monitoring namespace.
    gateway_rules = list(ingress_rules(any_render, pods["gateway"]))
    assert any(PROCESSES["gateway"] in rule_ports(rule) for rule in gateway_rules)
    internal = [rule for rule in gateway_rules if GATEWAY_INTERNAL_PORT in rule_ports(rule)]
    assert internal and all(
        rule_ports(rule) == {GATEWAY_INTERNAL_PORT}
        and admits_namespace(rule, MONITORING_NAMESPACE)
        and len(rule["from"]) == 1
        for rule in internal
    )


# --- monitoring ------------------------------------------------------------------------------

PROM_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
LABEL_SELECTOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
# monitoring.coreos.com/v1 (Prometheus Operator), the fields used here.
PODMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": _metadata_schema(),
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": PROM_DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": PROM_DURATION},
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUSRULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _metadata_schema(),
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": PROM_DURATION},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr"],
                                    "properties": {
                                        "alert": {
                                            "type": "string",
                                            "pattern": r"^[A-Za-z][A-Za-z0-9_]*$",
                                        },
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": PROM_DURATION},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def schema_problems(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    return [
        f"{obj['kind']}/{obj['metadata'].get('name')}: "
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft202012Validator(schema).iter_errors(obj)
    ]


def test_base_and_production_need_no_monitoring_crds(
    base_objects: list[dict[str, Any]], production_objects: list[dict[str, Any]]
) -> None:
    for objects in (base_objects, production_objects):
        assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
        assert not [o for o in objects if o["apiVersion"].startswith("gateway.networking.k8s.io/")]


def test_monitoring_objects_have_the_fields_the_operator_requires(
    monitored_objects: list[dict[str, Any]],
) -> None:
    podmonitors = by_kind(monitored_objects, "PodMonitor")
    rules = by_kind(monitored_objects, "PrometheusRule")
    assert podmonitors and rules
    problems = [p for o in podmonitors.values() for p in schema_problems(PODMONITOR_SCHEMA, o)]
    problems += [p for o in rules.values() for p in schema_problems(PROMETHEUSRULE_SCHEMA, o)]
    assert problems == []
    misspelt = copy.deepcopy(next(iter(podmonitors.values())))
    misspelt["spec"]["podMetricEndpoints"] = misspelt["spec"].pop("podMetricsEndpoints")
    assert schema_problems(PODMONITOR_SCHEMA, misspelt)
    # Prometheus refuses a rule file with two groups of one name.
    for rule in rules.values():
        names = [group["name"] for group in rule["spec"]["groups"]]
        assert len(names) == len(set(names))


def test_podmonitors_scrape_every_process_on_its_metrics_port(
    monitored_objects: list[dict[str, Any]],
) -> None:
    (config,) = [
        o
        for name, o in by_kind(monitored_objects, "ConfigMap").items()
        if name.startswith("stockmanager-config-")
    ]
    deployments = by_kind(monitored_objects, "Deployment")
    scraped: dict[str, int] = {}
    for monitor in by_kind(monitored_objects, "PodMonitor").values():
        spec = monitor["spec"]
        assert monitor["metadata"]["namespace"] == "stockmanager"
        assert spec["jobLabel"] == "app.kubernetes.io/component"
        for name, workload in workloads(monitored_objects).items():
            if not selector_matches(spec["selector"], pod_labels(workload)):
                continue
            assert name in deployments, f"{name} is not a long-running process"
            for endpoint in spec["podMetricsEndpoints"]:
                assert endpoint["path"] == "/metrics"
                ports = named_ports(workload)
                assert endpoint["port"] in ports, (name, endpoint["port"])
                assert name not in scraped, f"{name} scraped twice"
                scraped[name] = ports[endpoint["port"]]
    expected = {name: port for name, port in PROCESSES.items() if name != "gateway"}
    # The gateway's /metrics answers only on its internal listener.
    expected["gateway"] = GATEWAY_INTERNAL_PORT
    assert scraped == expected
    assert int(config["data"]["STOCKMANAGER_GATEWAY_INTERNAL_PORT"]) == GATEWAY_INTERNAL_PORT
    assert {s.name: s.port for s in registry.SERVICES} == {
        name: port for name, port in expected.items() if name != "gateway"
    }


def test_the_monitoring_namespace_may_reach_every_scraped_port_and_nothing_else_widens(
    monitored_objects: list[dict[str, Any]],
) -> None:
    pods = {name: pod_labels(w) for name, w in workloads(monitored_objects).items()}
    targets = {name: port for name, port in PROCESSES.items() if name != "gateway"}
    targets["gateway"] = GATEWAY_INTERNAL_PORT
    for name, port in targets.items():
        rules = list(ingress_rules(monitored_objects, pods[name]))
        assert any(
            port in rule_ports(rule) and admits_namespace(rule, MONITORING_NAMESPACE)
            for rule in rules
        ), name
        # Every rule names its sources: the gateway's pods, the monitoring namespace, or (the
        # gateway's public port only) the ingress controller's namespace.
        for rule in rules:
            assert rule.get("from"), (name, rule)
            for peer in rule["from"]:
                if "podSelector" in peer:
                    assert set(peer) == {"podSelector"}
                    admitted = [
                        n
                        for n, labels in pods.items()
                        if selector_matches(peer["podSelector"], labels)
                    ]
                    assert admitted == ["gateway"], (name, admitted)
                else:
                    namespace = peer["namespaceSelector"]["matchLabels"][
                        "kubernetes.io/metadata.name"
                    ]
                    assert namespace in (MONITORING_NAMESPACE, "ingress-nginx"), (name, peer)
                    if namespace == MONITORING_NAMESPACE:
                        assert rule_ports(rule) <= set(targets.values()), (name, rule)
                    else:
                        assert name == "gateway" and rule_ports(rule) == {PROCESSES["gateway"]}


# --- PromQL: parses, and reads only metrics the code defines -----------------------------------

# Series Prometheus itself adds for every target.
PROMETHEUS_SERIES = {"up"}
# Labels the Prometheus Operator puts on every scraped series (PodMonitor targets).
TARGET_LABELS = {"job", "namespace", "pod", "container", "endpoint", "instance"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": "stockmanager"}


def code_metrics() -> dict[str, set[str]]:
    """Every series name the processes can expose, with the labels of its metric.

    Imports each module of stockmanager/, gateway/ and services/ that uses prometheus_client
    (registration happens at import), then reads prometheus_client's default registry.
    """
    for package in ("stockmanager", "gateway", "services"):
        for path in sorted((REPO / package).rglob("*.py")):
            if "prometheus_client import" in path.read_text():
                module = ".".join(path.relative_to(REPO).with_suffix("").parts)
                importlib.import_module(module)
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: dict[str, set[str]] = {}
    collectors = REGISTRY._names_to_collectors  # the labels are not public API
    for family in REGISTRY.collect():
        if not family.name.startswith("stockmanager_"):
            continue
        for suffix in suffixes[family.type]:
            series = family.name + suffix
            collector = collectors.get(series) or collectors.get(family.name)
            labels = set(getattr(collector, "_labelnames", ()))
            names[series] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


@pytest.fixture(scope="module")
def known_metrics() -> dict[str, set[str]]:
    metrics = code_metrics()
    # The names docs/operations.md and the alerts rely on, so a failed import cannot hide them.
    for required in (
        "stockmanager_http_requests_total",
        "stockmanager_http_request_duration_seconds_bucket",
        "stockmanager_event_consumer_lag",
        "stockmanager_event_dead_letters",
        "stockmanager_outbox_backlog",
        "stockmanager_db_pool_checked_out",
        "stockmanager_db_pool_size",
    ):
        assert required in metrics, required
    return metrics


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def promql_problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    """Why `expr` would not work against this code's metrics (none: [])."""
    try:
        found = selectors(expr)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    problems = []
    for selector in found:
        name = selector.name
        if name in PROMETHEUS_SERIES:
            continue
        if name not in known:
            problems.append(f"{name}: no such metric in stockmanager/, gateway/ or services/")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in known[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {matcher.name!r}")
    if not found:
        problems.append("reads no metric")
    return problems


def test_the_promql_check_catches_mistakes(known_metrics: dict[str, set[str]]) -> None:
    assert promql_problems("rate(stockmanager_http_requests_total[5m])", known_metrics) == []
    assert promql_problems("rate(stockmanager_http_request_total[5m])", known_metrics)
    assert promql_problems('stockmanager_outbox_backlog{queue="x"}', known_metrics)
    assert promql_problems("sum(rate(stockmanager_http_requests_total[5m])", known_metrics)
    assert promql_problems("1 > 0", known_metrics)


def alert_rules(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for prometheus_rule in by_kind(objects, "PrometheusRule").values()
        for group in prometheus_rule["spec"]["groups"]
        for rule in group["rules"]
    }


def test_alerts_cover_the_issue_and_read_real_metrics(
    monitored_objects: list[dict[str, Any]], known_metrics: dict[str, set[str]]
) -> None:
    alerts = alert_rules(monitored_objects)
    problems = [
        f"{name}: {p}"
        for name, rule in alerts.items()
        for p in promql_problems(rule["expr"], known_metrics)
    ]
    assert problems == []
    # Each concern of the issue has an alert on the metric that measures it.
    wanted = {
        "StockManagerHigh5xxRate": {"stockmanager_http_requests_total"},
        "StockManagerHighLatencyP99": {"stockmanager_http_request_duration_seconds_bucket"},
        "StockManagerOutboxBacklog": {"stockmanager_outbox_backlog"},
        "StockManagerConsumerLag": {"stockmanager_event_consumer_lag"},
        "StockManagerDeadLetters": {"stockmanager_event_dead_letters"},
        "StockManagerWebhookDeliveriesOverdue": {"stockmanager_webhook_deliveries_overdue"},
        "StockManagerDBPoolSaturated": {
            "stockmanager_db_pool_checked_out",
            "stockmanager_db_pool_size",
        },
    }
    for name, metrics in wanted.items():
        assert {s.name for s in selectors(alerts[name]["expr"])} == metrics, name
    assert 'status=~"5.."' in alerts["StockManagerHigh5xxRate"]["expr"]
    assert "histogram_quantile(0.99" in alerts["StockManagerHighLatencyP99"]["expr"]
    # The SSE stream lasts up to an hour by design: it must not count as latency.
    assert f'route!="{STREAM_PATH}"' in alerts["StockManagerHighLatencyP99"]["expr"]
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_stream_route_label_is_the_one_the_gateway_records() -> None:
    # Both the gateway (route map pattern) and the notifications service (FastAPI path) label
    # the stream's requests with this template; the latency alert excludes it by that value.
    from gateway.routes import ROUTE_MAP
    from services.notifications.api import router

    assert STREAM_PATH in {route.pattern for route in ROUTE_MAP}
    assert STREAM_PATH in {getattr(route, "path", None) for route in router.routes}


# --- Grafana dashboard -------------------------------------------------------------------------


def dashboard(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = [
        o
        for o in by_kind(objects, "ConfigMap").values()
        if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert config_map["metadata"]["name"] == "stockmanager-dashboard"  # stable: no hash suffix
    ((key, text),) = config_map["data"].items()
    assert key.endswith(".json")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def dashboard_exprs(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            yield panel["title"], expr


def test_dashboard_is_a_grafana_dashboard_with_panels(
    monitored_objects: list[dict[str, Any]],
) -> None:
    board = dashboard(monitored_objects)
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len(panels) >= 6
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for panel in panels:
        assert panel["type"] and panel["title"] and panel["targets"], panel.get("title")
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["refId"]
        # Every $variable a query uses is declared (or Grafana's own).
        for target in panel["targets"]:
            for used in re.findall(r"\$(\w+)", target["expr"]):
                assert used in variables or used.startswith("__"), used
    # The files are the same: the ConfigMap is generated from the JSON in the repository.
    source = K8S / "components" / "monitoring" / "dashboards" / "stockmanager.json"
    assert json.loads(source.read_text()) == board


def test_dashboard_queries_parse_and_read_real_metrics(
    monitored_objects: list[dict[str, Any]], known_metrics: dict[str, set[str]]
) -> None:
    board = dashboard(monitored_objects)
    problems = [
        f"{title}: {p}"
        for title, expr in dashboard_exprs(board)
        for p in promql_problems(expr, known_metrics)
    ]
    assert problems == []
    used = {s.name for _, expr in dashboard_exprs(board) for s in selectors(expr)}
    # The dashboard shows what the alerts watch.
    alerted = {
        s.name for rule in alert_rules(monitored_objects).values() for s in selectors(rule["expr"])
    }
    assert alerted - PROMETHEUS_SERIES <= used


# --- migrations: any apply order, any tool ----------------------------------------------------


def test_migration_job_is_safe_under_kubectl_argo_cd_and_flux(
    any_render: list[dict[str, Any]],
) -> None:
    job = by_kind(any_render, "Job")["stockmanager-migrate"]
    annotations = job["metadata"]["annotations"]
    # Argo CD: a Sync hook (a PreSync hook would run before the new hashed ConfigMap and Secret
    # exist), deleted and recreated on every sync, and waited for before the Deployments.
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    job_wave = int(annotations["argocd.argoproj.io/sync-wave"])
    # Flux: recreate the Job when its immutable template changed, instead of failing.
    assert annotations["kustomize.toolkit.fluxcd.io/force"] == "enabled"
    # What the Job needs comes in an earlier wave; everything else in a later one.
    needed = {"Namespace", "ServiceAccount", "ConfigMap", "Secret"}
    for obj in any_render:
        wave = int(obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))
        if obj["kind"] in needed and obj["metadata"]["name"] != "stockmanager-dashboard":
            assert wave < job_wave, obj["kind"] + "/" + obj["metadata"]["name"]
        elif obj["kind"] != "Job":
            assert wave > job_wave, obj["kind"] + "/" + obj["metadata"]["name"]


def test_service_pods_wait_for_the_schema(any_render: list[dict[str, Any]]) -> None:
    deployments = by_kind(any_render, "Deployment")
    secrets = by_kind(any_render, "Secret")
    for service in SERVICES:
        spec = deployments[service]["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        (main,) = spec["containers"]
        assert init["name"] == "wait-for-schema"
        assert init["image"] == main["image"]  # the same release's migration heads
        assert init["command"] == ["/bin/sh", "-c"]
        (script,) = init["args"]
        assert re.fullmatch(r"until stockmanager migrate --check; do sleep \d+; done", script)
        (env,) = init["env"]
        assert env["name"] == "DATABASE_URL"
        assert env["valueFrom"]["secretKeyRef"]["name"] in secrets
    # The gateway holds no SQL and no database credentials: it does not wait.
    gateway = deployments["gateway"]["spec"]["template"]["spec"]
    assert "initContainers" not in gateway


def test_the_cli_has_the_check_the_init_containers_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stockmanager", "migrate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--check" in result.stdout


# --- docs -------------------------------------------------------------------------------------


def test_operations_doc_explains_the_variants_and_the_migration_flow() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for needle in (
        "components/gateway-api",
        "overlays/production-gateway-api",
        "components/monitoring",
        "proxy-body-size",
        "migrate --check",
        "argocd.argoproj.io/hook",
        "kustomize.toolkit.fluxcd.io/force",
    ):
        assert needle in text, needle
    # No example with a port range (the old allow-prometheus snippet had one).
    assert not re.search(r"endPort\s*:", text), "the docs must not suggest port ranges"
