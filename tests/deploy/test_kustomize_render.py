"""The offline kustomize renderer does what kustomize does for the features it claims."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from tests.deploy.kustomize_render import KustomizeError, content_hash, render


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


DEPLOYMENT = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      selector:
        matchLabels: {app: web}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
            - name: web
              image: example/web:1.0
              envFrom:
                - configMapRef: {name: settings}
              env:
                - name: TOKEN
                  valueFrom:
                    secretKeyRef: {name: credentials, key: TOKEN}
              resources:
                limits: {memory: 128Mi}
            - name: sidecar
              image: example/sidecar:2
"""


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        # Vectors from kustomize's api/hasher tests.
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "6ct58987ht"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"one": ""}}, "9g67k2htb6"),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"two": 2, "one": "", "three": 3}},
            "7757f9kkct",
        ),
        ({"apiVersion": "v1", "kind": "Secret", "type": "my-type"}, "5gmgkf8578"),
        (
            {"apiVersion": "v1", "kind": "Secret", "type": "my-type", "data": {"one": ""}},
            "74bd68bm66",
        ),
    ],
)
def test_content_hash_matches_kustomize(doc: dict[str, object], expected: str) -> None:
    assert content_hash(doc) == expected


def test_generators_hash_names_and_rewrite_references(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": """\
            namespace: shop
            resources: [deployment.yaml]
            configMapGenerator:
              - name: settings
                literals: [MODE=fast, "QUOTED='yes'"]
            secretGenerator:
              - name: credentials
                envs: [secret.env]
        """,
            "deployment.yaml": DEPLOYMENT,
            "secret.env": "# comment\nTOKEN=abc=def\n\n",
        },
    )
    objects = {o["kind"]: o for o in render(tmp_path)}
    config, secret, deployment = objects["ConfigMap"], objects["Secret"], objects["Deployment"]

    assert config["data"] == {"MODE": "fast", "QUOTED": "yes"}
    assert (
        config["metadata"]["name"]
        == f"settings-{content_hash({**config, 'metadata': {'name': 'settings'}})}"
    )
    assert base64.b64decode(secret["data"]["TOKEN"]).decode() == "abc=def"
    assert secret["type"] == "Opaque"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"shop"}


def test_overlay_merges_and_replaces_generated_data(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": """\
            namespace: shop
            resources: [deployment.yaml]
            configMapGenerator:
              - name: settings
                literals: [MODE=fast, LEVEL=1]
            secretGenerator:
              - name: credentials
                literals: [TOKEN=placeholder, OTHER=x]
        """,
            "base/deployment.yaml": DEPLOYMENT,
            "overlay/kustomization.yaml": """\
            resources: [../base]
            configMapGenerator:
              - name: settings
                namespace: shop
                behavior: merge
                literals: [LEVEL=2]
            secretGenerator:
              - name: credentials
                behavior: replace
                literals: [TOKEN=real]
        """,
        },
    )
    objects = {o["kind"]: o for o in render(tmp_path / "overlay")}
    assert objects["ConfigMap"]["data"] == {"MODE": "fast", "LEVEL": "2"}
    assert objects["Secret"]["data"] == {"TOKEN": base64.b64encode(b"real").decode()}


def test_patches_labels_and_images(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": """\
            resources: [deployment.yaml]
            labels:
              - pairs: {tier: web}
                includeSelectors: false
                includeTemplates: true
            images:
              - name: example/web
                newName: registry.test/web
                newTag: "2.0"
            patches:
              - target: {kind: Deployment, name: web}
                patch: |-
                  apiVersion: apps/v1
                  kind: Deployment
                  metadata:
                    name: web
                  spec:
                    template:
                      spec:
                        containers:
                          - name: web
                            resources:
                              limits: {cpu: "1"}
              - target: {kind: Deployment}
                patch: |-
                  - op: add
                    path: /spec/replicas
                    value: 3
                  - op: replace
                    path: /spec/template/spec/containers/1/image
                    value: example/sidecar:3
        """,
            "deployment.yaml": DEPLOYMENT,
        },
    )
    (deployment,) = render(tmp_path)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "registry.test/web:2.0"
    # Strategic merge: merged by container name, nested maps merged, other container untouched.
    assert containers[0]["resources"]["limits"] == {"memory": "128Mi", "cpu": "1"}
    assert containers[0]["envFrom"][0]["configMapRef"]["name"] == "settings"
    assert containers[1]["image"] == "example/sidecar:3"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["labels"] == {"tier": "web"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web", "tier": "web"}
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web"}


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [deployment.yaml]\ncommonLabels: {a: b}\n", "unsupported field"),
        ("resources: [deployment.yaml]\nreplicas: [{name: web, count: 2}]\n", "unsupported field"),
        ("resources: [https://example.com/x.yaml]\n", "remote resources"),
        ("resources: [missing.yaml]\n", "resource not found"),
        ("resources: [deployment.yaml]\npatches: [{path: p.yaml}]\n", "without a target"),
        (
            "resources: [deployment.yaml]\nlabels: [{pairs: {a: b}, includeSelectors: true}]\n",
            "includeSelectors",
        ),
        ("configMapGenerator: [{name: c, envs: [absent.env]}]\n", "env file not found"),
        ("configMapGenerator: [{name: c, literals: [NOVALUE]}]\n", "environment lookup"),
        ("configMapGenerator: [{name: c, behavior: merge, literals: [A=1]}]\n", "exactly one"),
        (
            "resources: [deployment.yaml]\npatches: [{target: {kind: Service}, patch: '[]'}]\n",
            "matches nothing",
        ),
    ],
)
def test_unsupported_or_invalid_input_is_refused(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    write(tmp_path, {"kustomization.yaml": kustomization, "deployment.yaml": DEPLOYMENT})
    with pytest.raises(KustomizeError, match=message):
        render(tmp_path)


def test_strategic_merge_directives_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": """\
            resources: [deployment.yaml]
            patches:
              - target: {kind: Deployment}
                patch: |-
                  kind: Deployment
                  metadata: {name: web}
                  spec:
                    template:
                      spec:
                        $patch: replace
        """,
            "deployment.yaml": DEPLOYMENT,
        },
    )
    with pytest.raises(KustomizeError, match=r"\$patch"):
        render(tmp_path)
