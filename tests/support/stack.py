"""Starts the gateway and every installed service as real processes for end-to-end tests."""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import httpx

from stockmanager.cli import available_services, bootstrap_root
from stockmanager.embedded import free_port
from stockmanager.runtime import INTERNAL_PORT_VARIABLE
from stockmanager.supervisor import ManagedSpec, ProcessSpec, RestartPolicy, Supervisor

ROOT_PASSWORD = "root-test-password"

# Every test sends from 127.0.0.1, so the per-address limits of the public POSTs would refuse
# the suite's many registrations and reset steps: stacks get room for them unless a test's
# extra_env says otherwise (tests/security/test_public_posts.py checks the real defaults).
SUITE_PUBLIC_LIMITS = {
    "STOCKMANAGER_REGISTER_LIMIT": "100000",
    "STOCKMANAGER_RESET_REQUEST_LIMIT": "100000",
    "STOCKMANAGER_RESET_CODE_LIMIT": "100000",
}


class ApiClient(httpx.Client):
    """An httpx client that may be used in `with` after it has already sent requests."""

    def __enter__(self) -> ApiClient:
        return self


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    supervisor: Supervisor
    # The gateway's internal listener (/readyz, /metrics); not reachable on base_url.
    internal_url: str = ""
    service_urls: dict[str, list[str]] = field(default_factory=dict)
    root_password: str = ROOT_PASSWORD
    output: StringIO = field(default_factory=StringIO)

    def client(self, **kwargs: object) -> ApiClient:
        return ApiClient(base_url=self.base_url, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    def login(self, username: str, password: str) -> ApiClient:
        client = self.client()
        response = client.post("/api/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return client

    def root(self) -> ApiClient:
        return self.login("root", self.root_password)


def unique(prefix: str = "t") -> str:
    """A short unique name for test data (tests share one database)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def service_spec(
    service: str, port: int, env: dict[str, str], name: str = "", python: str = sys.executable
) -> ProcessSpec:
    """`stockmanager serve <service>` on `port`, ready when its /readyz answers. `python`: the
    interpreter (bench/baseline.py runs another commit's tree with its own venv)."""
    return ProcessSpec(
        name=name or service,
        argv=[python, "-m", "stockmanager", "serve", service, "--port", str(port)],
        env=dict(env),
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


def gateway_spec(
    name: str, port: int, env: dict[str, str], python: str = sys.executable
) -> ProcessSpec:
    """A gateway process on `port`, with its internal listener (/readyz, /metrics) on a free
    port of its own; readiness is asked there. `internal_url(spec)` is its base URL."""
    internal_port = free_port()
    return ProcessSpec(
        name=name,
        argv=[python, "-m", "stockmanager", "serve", "gateway", "--port", str(port)],
        env={**env, INTERNAL_PORT_VARIABLE: str(internal_port)},
        ready_url=f"http://127.0.0.1:{internal_port}/readyz",
    )


def internal_url(spec: ProcessSpec) -> str:
    return f"http://127.0.0.1:{spec.env[INTERNAL_PORT_VARIABLE]}"


@contextmanager
def extra_gateway(env: dict[str, str], log_path: Path, name: str = "gateway") -> Iterator[str]:
    """One more gateway process with `env` (e.g. another replica on a stack's Redis and
    services, or one whose service URLs point nowhere); yields its public base URL."""
    port = free_port()
    with log_path.open("w") as out:
        supervisor = Supervisor([gateway_spec(name, port, env)], out=out)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=90)
            yield f"http://127.0.0.1:{port}"
        finally:
            supervisor.stop()


@contextmanager
def start_stack(
    *,
    database_url: str,
    redis_url: str,
    log_dir: Path,
    replicas: int = 1,
    extra_env: dict[str, str] | None = None,
    restart: RestartPolicy | None = None,
    servers: Iterable[ManagedSpec] = (),
    python: str = sys.executable,
    services: list[tuple[str, str]] | None = None,
    bootstrap: Callable[[dict[str, str]], object] | None = None,
) -> Iterator[Stack]:
    """Every process under one Supervisor; `restart` is its RestartPolicy (None: any unexpected
    exit is final; a policy restarts children only while `run_until_stopped()` runs) and
    `servers` the embedded servers it watches too (as `stockmanager up` does).
    Another tree's stack (bench/baseline.py): `python` runs its processes, `services` lists its
    (name, gateway URL setting) pairs and `bootstrap(env)` creates its root account."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STOCKMANAGER_INTERNAL_SECRET": secrets.token_urlsafe(32),
        "STOCKMANAGER_ROOT_PASSWORD": ROOT_PASSWORD,
        "STOCKMANAGER_LOG_LEVEL": "INFO",
        # Fast reclaim so kill/restart tests finish quickly.
        "STOCKMANAGER_EVENT_RECLAIM_IDLE_MS": "2000",
        **SUITE_PUBLIC_LIMITS,
        **(extra_env or {}),
    }
    import os

    if bootstrap is not None:
        bootstrap(env)
    else:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            bootstrap_root(ROOT_PASSWORD)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    specs: list[ProcessSpec] = []
    service_urls: dict[str, list[str]] = {}
    gateway_env = dict(env)
    if services is None:
        services = [(info.name, info.url_setting) for info in available_services()]
    for service, url_setting in services:
        urls = []
        for replica in range(replicas):
            port = free_port()
            name = service if replicas == 1 else f"{service}-{replica + 1}"
            urls.append(f"http://127.0.0.1:{port}")
            specs.append(service_spec(service, port, env, name, python))
        service_urls[service] = urls
        gateway_env[url_setting] = ",".join(urls)
    gateway_port = free_port()
    # Not in gateway_env (Stack.env): a second gateway built from it needs a port of its own.
    gateway = gateway_spec("gateway", gateway_port, gateway_env, python)
    specs.insert(0, gateway)
    log_file = (log_dir / "stack.log").open("w")
    supervisor = Supervisor(specs, out=log_file, restart=restart, servers=servers)
    stack = Stack(
        base_url=f"http://127.0.0.1:{gateway_port}",
        env=gateway_env,
        supervisor=supervisor,
        service_urls=service_urls,
        internal_url=internal_url(gateway),
    )
    supervisor.start()
    try:
        supervisor.wait_ready(timeout=90)
        yield stack
    finally:
        supervisor.stop()
        log_file.close()
