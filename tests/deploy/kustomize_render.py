"""A small, honest subset of `kustomize build`, so the tests can render deploy/k8s offline.

The kustomize binary is not available where the tests run, and no maintained pure-Python
implementation exists, so this module implements exactly the features deploy/k8s uses, in
kustomize's order, and refuses everything else with `KustomizeError` instead of guessing:

- `resources`: local files (multi-document YAML) and directories holding a kustomization;
- generators (`configMapGenerator`, `secretGenerator`): `literals`, `envs`, `type`,
  `behavior` (create / merge / replace), `namespace`, `options` and top-level
  `generatorOptions` (labels, annotations, disableNameSuffixHash); the content-hash suffix is
  kustomize's own algorithm (api/hasher: sha256 of the Go-JSON encoding of kind, name, type,
  data; first 10 hex digits with 0,1,3,a,e mapped to g,h,k,m,t) and is applied once, to the
  final content, with references in pod specs and Ingress TLS rewritten;
- transformers, in kustomize's order: `patches` (each needs a `target`; a YAML list is a JSON
  6902 patch with add/remove/replace, a mapping is a strategic-merge patch), `namespace`,
  `labels` (includeSelectors: false only; includeTemplates for Deployment/StatefulSet/
  DaemonSet/ReplicaSet/Job pod templates), `images` (newName, newTag, digest);
- output order: kustomize's "legacy" kind order for the kinds it lists, then the rest by
  group/version/kind string, then namespace and name.

Strategic merge knows only the merge keys of the lists our patches touch (containers,
initContainers, volumes, env by `name`; volumeMounts by `mountPath`; container ports by
`containerPort`; service ports by `port`); any other list is replaced, as for atomic lists in
Kubernetes. Patch directives (`$patch`, `$setElementOrder`, ...) are refused.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "images",
        "patches",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
    }
)
GENERATOR_FIELDS = frozenset(
    {"name", "namespace", "behavior", "literals", "envs", "options", "type"}
)
OPTION_FIELDS = frozenset({"labels", "annotations", "disableNameSuffixHash"})
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
# kustomize's legacy ordering (api/resid/gvk.go: orderFirst / orderLast).
ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
}
ENV_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not implement, or is invalid."""


@dataclass
class Resource:
    doc: dict[str, Any]
    generated: bool = False
    hash_suffix: bool = False

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        namespace = self.doc.get("metadata", {}).get("namespace")
        return None if namespace is None else str(namespace)

    @property
    def api_group(self) -> str:
        api_version = str(self.doc.get("apiVersion", ""))
        return api_version.split("/", 1)[0] if "/" in api_version else ""

    def id(self) -> tuple[str, str, str | None, str]:
        return (self.api_group, self.kind, self.namespace, self.name)


def render(path: str | Path) -> list[dict[str, Any]]:
    """`kustomize build <path>` for the supported subset: the rendered objects, in order."""
    resources = _build(Path(path).resolve(), stack=())
    _apply_name_hashes(resources)
    return [r.doc for r in sorted(resources, key=_legacy_order_key)]


# --- one kustomization ---------------------------------------------------------------------


def _build(directory: Path, stack: tuple[Path, ...]) -> list[Resource]:
    if directory in stack:
        raise KustomizeError(f"cycle in resources: {directory}")
    kustomization = _load_kustomization(directory)
    resources: list[Resource] = []
    for entry in kustomization.get("resources") or []:
        resources.extend(_load_resource_entry(directory, entry, (*stack, directory)))
    _check_unique(resources, directory)

    defaults = kustomization.get("generatorOptions") or {}
    _check_fields(defaults, OPTION_FIELDS, f"{directory}: generatorOptions")
    for kind, field in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for spec in kustomization.get(field) or []:
            _run_generator(resources, directory, kind, spec, defaults)

    # kustomize's builtin transformer order: patches, namespace, labels, images.
    for patch in kustomization.get("patches") or []:
        _apply_patch(resources, directory, patch)
    if kustomization.get("namespace"):
        _set_namespace(resources, kustomization["namespace"])
    for label_spec in kustomization.get("labels") or []:
        _apply_labels(resources, label_spec, directory)
    for image in kustomization.get("images") or []:
        _apply_image(resources, image, directory)
    return resources


def _load_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            data = yaml.safe_load(candidate.read_text()) or {}
            break
    else:
        raise KustomizeError(f"no kustomization file in {directory}")
    if not isinstance(data, dict):
        raise KustomizeError(f"{directory}: a kustomization must be a mapping")
    _check_fields(data, SUPPORTED_FIELDS, f"{directory}/kustomization")
    if (
        data.get("apiVersion", "kustomize.config.k8s.io/v1beta1")
        != "kustomize.config.k8s.io/v1beta1"
    ):
        raise KustomizeError(f"{directory}: unsupported apiVersion {data.get('apiVersion')!r}")
    if data.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{directory}: unsupported kind {data.get('kind')!r}")
    return data


def _load_resource_entry(directory: Path, entry: str, stack: tuple[Path, ...]) -> list[Resource]:
    if "://" in entry or entry.startswith("git@"):
        raise KustomizeError(f"remote resources are not supported: {entry}")
    target = (directory / entry).resolve()
    if target.is_dir():
        return _build(target, stack)
    if target.is_file():
        return [Resource(doc) for doc in _load_documents(target)]
    raise KustomizeError(f"{directory}: resource not found: {entry}")


def _load_documents(path: Path) -> list[dict[str, Any]]:
    docs = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: every document needs apiVersion and kind")
        if doc["kind"].endswith("List"):
            raise KustomizeError(f"{path}: List kinds are not supported")
        if not doc.get("metadata", {}).get("name"):
            raise KustomizeError(f"{path}: a {doc['kind']} without metadata.name")
        docs.append(doc)
    return docs


def _check_unique(resources: list[Resource], directory: Path) -> None:
    seen: set[tuple[str, str, str | None, str]] = set()
    for resource in resources:
        if resource.id() in seen:
            raise KustomizeError(f"{directory}: duplicate resource {resource.id()}")
        seen.add(resource.id())


def _check_fields(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise KustomizeError(f"{where}: unsupported field(s) {sorted(unknown)}")


# --- generators ------------------------------------------------------------------------------


def _run_generator(
    resources: list[Resource],
    directory: Path,
    kind: str,
    spec: dict[str, Any],
    defaults: dict[str, Any],
) -> None:
    where = f"{directory}: {kind} generator {spec.get('name')!r}"
    _check_fields(spec, GENERATOR_FIELDS, where)
    if kind == "ConfigMap" and "type" in spec:
        raise KustomizeError(f"{where}: `type` applies to Secrets only")
    options = {**defaults, **(spec.get("options") or {})}
    _check_fields(options, OPTION_FIELDS, f"{where}: options")
    name = spec.get("name")
    if not name:
        raise KustomizeError(f"{where}: a generator needs a name")

    pairs: dict[str, str] = {}
    for literal in spec.get("literals") or []:
        key, value = _split_pair(str(literal), where)
        pairs[key] = _unquote_literal(value)
    for env_file in spec.get("envs") or []:
        pairs.update(_read_env_file(directory / env_file, where))
    data = (
        {k: base64.b64encode(v.encode()).decode() for k, v in pairs.items()}
        if kind == "Secret"
        else pairs
    )

    behavior = spec.get("behavior", "create")
    if behavior == "create":
        metadata: dict[str, Any] = {"name": name}
        if spec.get("namespace"):
            metadata["namespace"] = spec["namespace"]
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": metadata}
        if kind == "Secret":
            doc["type"] = spec.get("type", "Opaque")
        doc["data"] = data
        _set_meta(doc, "labels", options.get("labels"))
        _set_meta(doc, "annotations", options.get("annotations"))
        resource = Resource(
            doc, generated=True, hash_suffix=not options.get("disableNameSuffixHash")
        )
        if any(
            r.kind == kind and r.name == name and r.namespace == resource.namespace
            for r in resources
        ):
            raise KustomizeError(f"{where}: already exists; use behavior merge or replace")
        resources.append(resource)
        return
    if behavior not in ("merge", "replace"):
        raise KustomizeError(f"{where}: unknown behavior {behavior!r}")
    matches = [
        r
        for r in resources
        if r.kind == kind
        and r.name == name
        and (spec.get("namespace") is None or r.namespace == spec["namespace"])
    ]
    if len(matches) != 1:
        raise KustomizeError(
            f"{where}: behavior {behavior} needs exactly one existing {kind}, found {len(matches)}"
        )
    existing = matches[0]
    if "type" in spec and existing.doc.get("type", "Opaque") != spec["type"]:
        raise KustomizeError(f"{where}: cannot change the Secret type")
    if behavior == "merge":
        existing.doc.setdefault("data", {}).update(data)
    else:
        existing.doc["data"] = data
    _set_meta(existing.doc, "labels", options.get("labels"))
    _set_meta(existing.doc, "annotations", options.get("annotations"))
    if options.get("disableNameSuffixHash"):
        existing.hash_suffix = False


def _split_pair(text: str, where: str) -> tuple[str, str]:
    if "=" not in text:
        # kustomize would read the value from its own environment: not reproducible here.
        raise KustomizeError(f"{where}: {text!r} has no '=' (environment lookup unsupported)")
    key, value = text.split("=", 1)
    if not ENV_KEY.match(key):
        raise KustomizeError(f"{where}: invalid key {key!r}")
    return key, value


def _unquote_literal(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _read_env_file(path: Path, where: str) -> dict[str, str]:
    if not path.is_file():
        raise KustomizeError(f"{where}: env file not found: {path}")
    pairs: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, value = _split_pair(line, f"{path}:{number}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            # kustomize versions disagree on unquoting env-file values: refuse the ambiguity.
            raise KustomizeError(f"{path}:{number}: quoted value; write it without quotes")
        pairs[key] = value
    return pairs


def _set_meta(doc: dict[str, Any], field: str, values: dict[str, str] | None) -> None:
    if values:
        doc.setdefault("metadata", {}).setdefault(field, {}).update(
            {str(k): str(v) for k, v in values.items()}
        )


# --- patches ---------------------------------------------------------------------------------


def _apply_patch(resources: list[Resource], directory: Path, entry: dict[str, Any]) -> None:
    _check_fields(entry, frozenset({"path", "patch", "target"}), f"{directory}: patch")
    if ("path" in entry) == ("patch" in entry):
        raise KustomizeError(f"{directory}: a patch needs exactly one of `path` or `patch`")
    if "target" not in entry:
        raise KustomizeError(f"{directory}: patches without a target are not supported")
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) != 1:
        raise KustomizeError(f"{directory}: a patch must be one YAML document")
    body = docs[0]
    targets = [r for r in resources if _matches_target(r, entry["target"], directory)]
    if not targets:
        raise KustomizeError(f"{directory}: patch target {entry['target']} matches nothing")
    for resource in targets:
        if isinstance(body, list):
            resource.doc = _json6902(resource.doc, body)
        elif isinstance(body, dict):
            if body.get("kind") not in (None, resource.kind):
                raise KustomizeError(
                    f"{directory}: patch kind {body.get('kind')} "
                    f"does not match target {resource.kind}"
                )
            patch = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}
            resource.doc = _strategic_merge(resource.doc, patch, ())
            metadata_patch = {
                k: v
                for k, v in (body.get("metadata") or {}).items()
                if k not in ("name", "namespace")
            }
            if metadata_patch:
                resource.doc["metadata"] = _strategic_merge(
                    resource.doc["metadata"], metadata_patch, ("metadata",)
                )
        else:
            raise KustomizeError(f"{directory}: a patch must be a mapping or a list")


def _matches_target(resource: Resource, target: dict[str, Any], directory: Path) -> bool:
    _check_fields(
        target,
        frozenset({"group", "version", "kind", "name", "namespace", "labelSelector"}),
        f"{directory}: patch target",
    )
    api_version = str(resource.doc.get("apiVersion", ""))
    version = api_version.rsplit("/", 1)[-1]
    checks: list[tuple[str, Callable[[str], bool]]] = [
        ("group", lambda v: resource.api_group == v),
        ("version", lambda v: version == v),
        ("kind", lambda v: resource.kind == v),
        # kustomize treats name and namespace as anchored regular expressions.
        ("name", lambda v: re.fullmatch(v, resource.name) is not None),
        ("namespace", lambda v: re.fullmatch(v, resource.namespace or "") is not None),
        ("labelSelector", lambda v: _labels_match(resource.doc, v)),
    ]
    return all(check(str(target[key])) for key, check in checks if key in target)


def _labels_match(doc: dict[str, Any], selector: str) -> bool:
    labels = doc.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        if "=" not in term or "!=" in term:
            raise KustomizeError(f"only equality label selectors are supported: {selector!r}")
        key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
        if labels.get(key) != value:
            return False
    return True


def _strategic_merge(base: Any, patch: Any, path: tuple[str, ...]) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(key, str) and key.startswith("$"):
            raise KustomizeError(f"strategic-merge directive {key} at {'/'.join(path)} unsupported")
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _strategic_merge(base[key], value, (*path, key))
        elif isinstance(value, list) and isinstance(base.get(key), list):
            merged[key] = _merge_list(base[key], value, (*path, key))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_list(base: list[Any], patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    field = path[-1]
    merge_key = MERGE_KEYS.get(field)
    if field == "ports" and all(isinstance(item, dict) for item in base + patch):
        merge_key = "containerPort" if any("containerPort" in i for i in base + patch) else "port"
    if merge_key is None:
        return copy.deepcopy(patch)  # atomic list: replaced
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise KustomizeError(f"{'/'.join(path)}: patch item without merge key {merge_key}")
        for index, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                merged[index] = _strategic_merge(existing, item, path)
                break
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _json6902(doc: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict):
            raise KustomizeError(f"JSON patch operation must be a mapping: {operation!r}")
        op, pointer = operation.get("op"), operation.get("path")
        if op not in ("add", "remove", "replace"):
            raise KustomizeError(f"JSON patch op {op!r} unsupported (add, remove, replace only)")
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            raise KustomizeError(f"JSON patch path must be a JSON pointer: {pointer!r}")
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
        parent: Any = result
        for token in tokens[:-1]:
            parent = _pointer_step(parent, token, pointer)
        last = tokens[-1]
        if isinstance(parent, list):
            if op == "add" and last == "-":
                parent.append(copy.deepcopy(operation["value"]))
                continue
            index = _list_index(parent, last, pointer, allow_end=op == "add")
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif op == "remove":
                parent.pop(index)
            else:
                parent[index] = copy.deepcopy(operation["value"])
        elif isinstance(parent, dict):
            if op in ("remove", "replace") and last not in parent:
                raise KustomizeError(f"JSON patch {op}: {pointer} does not exist")
            if op == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(operation["value"])
        else:
            raise KustomizeError(f"JSON patch: {pointer} does not address a container")
    return result


def _pointer_step(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise KustomizeError(f"JSON patch: {pointer}: missing {token!r}")
        return node[token]
    if isinstance(node, list):
        return node[_list_index(node, token, pointer, allow_end=False)]
    raise KustomizeError(f"JSON patch: {pointer}: cannot descend into a scalar")


def _list_index(items: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    if not token.isdigit():
        raise KustomizeError(f"JSON patch: {pointer}: {token!r} is not a list index")
    index = int(token)
    if index > len(items) or (index == len(items) and not allow_end):
        raise KustomizeError(f"JSON patch: {pointer}: index {index} out of range")
    return index


# --- namespace, labels, images -------------------------------------------------------------


def _set_namespace(resources: list[Resource], namespace: str) -> None:
    for resource in resources:
        if resource.kind not in CLUSTER_SCOPED_KINDS:
            resource.doc.setdefault("metadata", {})["namespace"] = namespace


def _apply_labels(resources: list[Resource], spec: dict[str, Any], directory: Path) -> None:
    _check_fields(
        spec,
        frozenset({"pairs", "includeSelectors", "includeTemplates"}),
        f"{directory}: labels",
    )
    if spec.get("includeSelectors"):
        raise KustomizeError(f"{directory}: labels with includeSelectors: true are not supported")
    pairs = {str(k): str(v) for k, v in (spec.get("pairs") or {}).items()}
    for resource in resources:
        _set_meta(resource.doc, "labels", pairs)
        if spec.get("includeTemplates") and resource.kind in POD_TEMPLATE_KINDS:
            template = resource.doc.setdefault("spec", {}).setdefault("template", {})
            _set_meta(template, "labels", pairs)


def _apply_image(resources: list[Resource], spec: dict[str, Any], directory: Path) -> None:
    _check_fields(spec, frozenset({"name", "newName", "newTag", "digest"}), f"{directory}: images")
    if "newTag" in spec and "digest" in spec:
        raise KustomizeError(f"{directory}: images: newTag and digest are exclusive")
    for container in _all_containers(resources):
        image = str(container.get("image", ""))
        name, tag, digest = _split_image(image)
        if name != spec["name"]:
            continue
        name = spec.get("newName", name)
        if "digest" in spec:
            container["image"] = f"{name}@{spec['digest']}"
        elif "newTag" in spec:
            container["image"] = f"{name}:{spec['newTag']}"
        else:
            container["image"] = (
                name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            )


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last_slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > last_slash:
        image, tag = image[:colon], image[colon + 1 :]
    return image, tag, digest


def _pod_specs(resources: list[Resource]) -> Iterator[tuple[Resource, dict[str, Any]]]:
    for resource in resources:
        spec = resource.doc.get("spec") or {}
        if resource.kind in POD_TEMPLATE_KINDS:
            yield resource, (spec.get("template") or {}).get("spec") or {}
        elif resource.kind == "CronJob":
            job = (spec.get("jobTemplate") or {}).get("spec") or {}
            yield resource, (job.get("template") or {}).get("spec") or {}
        elif resource.kind == "Pod":
            yield resource, spec


def _all_containers(resources: list[Resource]) -> Iterator[dict[str, Any]]:
    for _, pod in _pod_specs(resources):
        for field in ("initContainers", "containers"):
            yield from pod.get(field) or []


# --- name hashes and references --------------------------------------------------------------


def _go_json(value: Any) -> bytes:
    """Go's encoding/json output for plain data: sorted keys, no spaces, HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text.encode()


def content_hash(doc: dict[str, Any]) -> str:
    """kustomize's name-suffix hash of a ConfigMap or Secret."""
    name = doc.get("metadata", {}).get("name", "")
    if doc["kind"] == "ConfigMap":
        encoded: dict[str, Any] = {"kind": "ConfigMap", "name": name, "data": doc.get("data", "")}
        if isinstance(doc.get("binaryData"), dict):
            encoded["binaryData"] = doc["binaryData"]
    elif doc["kind"] == "Secret":
        encoded = {
            "kind": "Secret",
            "type": doc.get("type", ""),
            "name": name,
            "data": doc.get("data", ""),
        }
        if isinstance(doc.get("stringData"), dict):
            encoded["stringData"] = doc["stringData"]
    else:
        raise KustomizeError(f"no name hash for kind {doc['kind']}")
    digest = hashlib.sha256(_go_json(encoded)).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _apply_name_hashes(resources: list[Resource]) -> None:
    renames: dict[tuple[str, str | None, str], str] = {}
    for resource in resources:
        if resource.generated and resource.hash_suffix:
            new_name = f"{resource.name}-{content_hash(resource.doc)}"
            renames[(resource.kind, resource.namespace, resource.name)] = new_name
            resource.doc["metadata"]["name"] = new_name
    if not renames:
        return

    def rename(kind: str, namespace: str | None, holder: dict[str, Any], field: str) -> None:
        current = holder.get(field)
        if isinstance(current, str) and (kind, namespace, current) in renames:
            holder[field] = renames[(kind, namespace, current)]

    for resource, pod in _pod_specs(resources):
        ns = resource.namespace
        for field in ("initContainers", "containers"):
            for container in pod.get(field) or []:
                for source in container.get("envFrom") or []:
                    rename("ConfigMap", ns, source.get("configMapRef") or {}, "name")
                    rename("Secret", ns, source.get("secretRef") or {}, "name")
                for env in container.get("env") or []:
                    value_from = env.get("valueFrom") or {}
                    rename("ConfigMap", ns, value_from.get("configMapKeyRef") or {}, "name")
                    rename("Secret", ns, value_from.get("secretKeyRef") or {}, "name")
        for volume in pod.get("volumes") or []:
            rename("ConfigMap", ns, volume.get("configMap") or {}, "name")
            rename("Secret", ns, volume.get("secret") or {}, "secretName")
            for source in (volume.get("projected") or {}).get("sources") or []:
                rename("ConfigMap", ns, source.get("configMap") or {}, "name")
                rename("Secret", ns, source.get("secret") or {}, "name")
        for secret in pod.get("imagePullSecrets") or []:
            rename("Secret", ns, secret, "name")
    for resource in resources:
        if resource.kind == "Ingress":
            for tls in (resource.doc.get("spec") or {}).get("tls") or []:
                rename("Secret", resource.namespace, tls, "secretName")


def _legacy_order_key(resource: Resource) -> tuple[int, str, str, str]:
    kind = resource.kind
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    else:
        rank = len(ORDER_FIRST)
    api_version = str(resource.doc.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    gvk = f"{group}_{version}_{kind}" if group else f"~G_{version}_{kind}"
    return (rank, gvk, resource.namespace or "", resource.name)
