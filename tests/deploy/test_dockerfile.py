"""deploy/Dockerfile: a multi-stage, non-root, health-checked image running `stockmanager`.

No Docker engine here, so the Dockerfile is parsed (instructions, stages, JSON exec forms) and
its build-context filter (deploy/Dockerfile.dockerignore) is evaluated with Docker's matching
rules; the health-check script it ships is run against real local HTTP servers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType

import pytest

from stockmanager import registry
from tests.deploy.conftest import DEPLOY, PROCESSES, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
HEALTHCHECK_IN_IMAGE = "/usr/local/lib/stockmanager/healthcheck.py"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str]:
        value = json.loads(self.arguments)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Instructions with line continuations and comments; global ARG defaults; stages by FROM."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    assert not pending, "dangling line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name, []))
        elif not stages:
            assert instruction.keyword == "ARG", "only ARG may precede the first FROM"
            key, _, default = instruction.arguments.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_multi_stage_build_on_python_311_slim(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["build", "runtime"]
    assert {s.base for s in stages} == {"python:3.11-slim"}
    # Compilers stay in the build stage.
    assert "build-essential" in " ".join(i.arguments for i in stages[0].all("RUN"))
    assert "build-essential" not in " ".join(i.arguments for i in stages[1].all("RUN"))


def test_runtime_installs_only_the_project_wheel(stages: list[Stage], runtime: Stage) -> None:
    (wheel,) = [i for i in stages[0].all("RUN") if "pip wheel" in i.arguments]
    assert re.search(r"pip wheel --wheel-dir /wheels \.$", wheel.arguments), wheel
    (install,) = [i for i in runtime.all("RUN") if "pip install" in i.arguments]
    assert "--mount=type=bind,from=build,source=/wheels" in install.arguments
    assert "--no-index" in install.arguments
    assert install.arguments.endswith(" stockmanager"), "the project, without extras"
    assert "[dev]" not in DOCKERFILE.read_text()
    copied = {i.arguments.split()[0] for i in runtime.all("COPY")}
    assert copied == {"deploy/healthcheck.py"}, "the runtime gets the wheel's code only"


def test_runs_as_a_non_root_user(runtime: Stage) -> None:
    user = runtime.all("USER")[-1].arguments
    uid, _, gid = user.partition(":")
    assert uid == "10001" and gid == "10001", user
    (create,) = [i for i in runtime.all("RUN") if "useradd" in i.arguments]
    assert "--uid 10001" in create.arguments
    # Nothing after USER switches back to root.
    after = runtime.instructions[runtime.instructions.index(runtime.all("USER")[-1]) :]
    assert not [i for i in after if i.keyword == "RUN"]


def test_entrypoint_is_the_stockmanager_command(runtime: Stage) -> None:
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    assert entrypoint.exec_form() == ["stockmanager"]
    assert cmd.exec_form() == ["serve", "gateway"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["stockmanager"] == "stockmanager.cli:main"
    env = " ".join(i.arguments for i in runtime.all("ENV"))
    assert "STOCKMANAGER_HOST=0.0.0.0" in env
    exposed = {int(p) for i in runtime.all("EXPOSE") for p in i.arguments.split()}
    assert exposed == set(PROCESSES.values())


def test_healthcheck_probes_healthz_with_python(runtime: Stage) -> None:
    (healthcheck,) = runtime.all("HEALTHCHECK")
    options, _, command = healthcheck.arguments.partition("CMD ")
    assert json.loads(command) == ["python", HEALTHCHECK_IN_IMAGE]
    assert "--interval=" in options and "--timeout=" in options
    copies = [i.arguments.split() for i in runtime.all("COPY")]
    assert ["deploy/healthcheck.py", HEALTHCHECK_IN_IMAGE] in copies
    assert '"http://{host}:{port}/healthz"' in (DEPLOY / "healthcheck.py").read_text()


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
    stages: list[Stage], ignore_patterns: list[str]
) -> None:
    for stage in stages:
        for instruction in stage.all("COPY"):
            *sources, _ = instruction.arguments.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert not dockerignore_excludes(ignore_patterns, source.rstrip("/")), source
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = packages["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {s.rstrip("/") for i in stages[0].all("COPY") for s in i.arguments.split()[:-1]}
    assert {p.rstrip("*") for p in include} <= copied, "every packaged tree is copied"


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
