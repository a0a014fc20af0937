"""The `stockmanager` command: up, serve, migrate, bootstrap-root, import-upstream."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from stockmanager import registry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stockmanager", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up", help="start the whole system (embedded PostgreSQL/Redis by default)"
    )
    up.add_argument("--replicas", type=int, default=1, help="replicas of every service (1-9)")
    up.add_argument("--host", default=os.environ.get("STOCKMANAGER_HOST", "127.0.0.1"))
    up.add_argument("--port", type=int, default=int(os.environ.get("STOCKMANAGER_PORT", "5000")))
    up.add_argument("--data-dir", default=os.environ.get("STOCKMANAGER_DATA_DIR", ".stockmanager"))

    serve = commands.add_parser("serve", help="run one process (gateway or a service)")
    serve.add_argument("name", choices=[p.name for p in registry.PROCESSES])
    serve.add_argument("--host", default=os.environ.get("STOCKMANAGER_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=None)

    migrate_cmd = commands.add_parser("migrate", help="run every service's database migrations")
    migrate_cmd.add_argument(
        "--check",
        action="store_true",
        help="migrate nothing; exit 1 (naming them) if any service schema is not at its head",
    )
    commands.add_parser("bootstrap-root", help="create the root account if it does not exist")
    upstream = commands.add_parser(
        "import-upstream",
        help="bring an upstream StockManager SQLite database over (docs/"
        "upgrading-from-stockmanager.md)",
    )
    upstream.add_argument("path", help="the upstream database file (SQLite)")
    upstream.add_argument(
        "--dry-run", action="store_true", help="import in a transaction rolled back: report only"
    )
    upstream.add_argument("--json", action="store_true", help="machine-readable report")
    upstream.add_argument(
        "--data-dir",
        default=os.environ.get("STOCKMANAGER_DATA_DIR", ".stockmanager"),
        help="`up`'s data directory (its embedded PostgreSQL) when DATABASE_URL is not set",
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_process(args.name, args.host, args.port)
    if args.command == "migrate":
        if args.check:
            return migrate_check()
        migrate()
        return 0
    if args.command == "bootstrap-root":
        created, password = bootstrap_root()
        if created and not os.environ.get("STOCKMANAGER_ROOT_PASSWORD"):
            # Generated: this is the only time anyone can learn it.
            print(f"root account created; generated password: {password}")
        elif created:
            print("root account created with STOCKMANAGER_ROOT_PASSWORD")
        else:
            print("root account already exists")
        return 0
    if args.command == "import-upstream":
        from stockmanager.upstream.command import run_command

        return run_command(
            args.path, dry_run=args.dry_run, as_json=args.json, data_dir=args.data_dir
        )
    if args.command == "up":
        from stockmanager.runtime import run_up

        return run_up(
            replicas=args.replicas, host=args.host, port=args.port, data_dir=args.data_dir
        )
    return 2


def available_services() -> list[registry.ProcessInfo]:
    """Services whose package is installed (the system grows one service at a time)."""
    found = []
    for info in registry.SERVICES:
        module = info.app_factory.split(":", 1)[0]
        if importlib.util.find_spec(module.rsplit(".", 1)[0]) is not None:
            try:
                if importlib.util.find_spec(module) is not None:
                    found.append(info)
            except ModuleNotFoundError:
                continue
    return found


def serve_process(name: str, host: str, port: int | None) -> int:
    import uvicorn

    problem = internal_secret_check()
    if problem is not None:
        print(
            f"stockmanager serve {name}: refusing to start: {problem}.\n"
            "Every process must share one random secret of at least 32 bytes, e.g. "
            "`openssl rand -hex 32`; `stockmanager up` generates one by itself.",
            file=sys.stderr,
            flush=True,
        )
        return 2
    info = registry.process(name)
    port = port or int(os.environ.get("STOCKMANAGER_PORT", info.port))
    options: dict[str, object] = {
        "factory": True,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "timeout_keep_alive": 30,
        # The gateway decides the client IP itself (X-Forwarded-For only from its configured
        # trusted proxies, decisions §2); uvicorn's default would believe any local peer.
        "proxy_headers": False,
        # No `server: uvicorn` on any answer (the gateway passes no service's on either).
        "server_header": False,
    }
    config = uvicorn.Config(info.app_factory, host=host, port=port, **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    sockets = None
    if name == "gateway":
        # /readyz and /metrics live on a second, internal listener (gateway/app.py).
        from gateway.settings import GatewaySettings

        settings = GatewaySettings()
        internal_port = settings.gateway_internal_port
        if internal_port:
            if internal_port == port:
                print(
                    "stockmanager serve gateway: STOCKMANAGER_GATEWAY_INTERNAL_PORT must differ "
                    f"from the public port ({port})",
                    file=sys.stderr,
                    flush=True,
                )
                return 2
            internal = uvicorn.Config(
                info.app_factory, host=settings.gateway_internal_host, port=internal_port
            )
            # Public first: it listens before the internal one, so "ready" implies "serving".
            sockets = [config.bind_socket(), internal.bind_socket()]
    server.run(sockets=sockets)
    return 0 if server.started else 3


def internal_secret_check() -> str | None:
    """Why this process must not serve with its configured internal secret (None: it may)."""
    from stockmanager.settings import (
        DEV_INTERNAL_SECRET,
        INTERNAL_SECRET_VARIABLE,
        KernelSettings,
        internal_secret_problem,
    )

    value = KernelSettings().internal_secret
    unset = value == DEV_INTERNAL_SECRET and INTERNAL_SECRET_VARIABLE not in os.environ
    return internal_secret_problem(None if unset else value)


def migration_order() -> list[tuple[str, str]]:
    """`(service, schema)` of every installed service, in migration order."""
    present = {info.name: info for info in available_services()}
    return [
        (name, present[name].schema or name) for name in registry.MIGRATION_ORDER if name in present
    ]


def migrate(database_url: str | None = None) -> None:
    from stockmanager.migrations import upgrade
    from stockmanager.settings import KernelSettings

    upgrade(database_url or KernelSettings().database_url, migration_order())


def migrate_check(database_url: str | None = None) -> int:
    """`stockmanager migrate --check`: 0 when every schema is at its head, else 1 (never migrates).
    Pods run it before they start (initContainer), so new code never serves an old schema."""
    from stockmanager.migrations import behind
    from stockmanager.settings import KernelSettings

    order = migration_order()
    try:
        late = behind(database_url or KernelSettings().database_url, order)
    except Exception as exc:  # noqa: BLE001 - an unreachable database is "not current" too
        print(
            f"stockmanager migrate --check: cannot read the schema versions: {exc}", file=sys.stderr
        )
        return 1
    if late:
        details = "; ".join(f"{schema} ({state})" for schema, state in late.items())
        print(
            f"stockmanager migrate --check: schemas behind their migration head: {details}. "
            "Run `stockmanager migrate`.",
            file=sys.stderr,
            flush=True,
        )
        return 1
    print(f"stockmanager migrate --check: {len(order)} schemas at head", flush=True)
    return 0


def bootstrap_root(password: str | None = None) -> tuple[bool, str | None]:
    module_name, function_name = registry.ROOT_BOOTSTRAP.split(":")
    ensure_root = getattr(importlib.import_module(module_name), function_name)
    result: tuple[bool, str | None] = ensure_root(password)
    return result


if __name__ == "__main__":
    sys.exit(main())
