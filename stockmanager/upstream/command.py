"""`stockmanager import-upstream PATH [--dry-run] [--json] [--data-dir DIR]`.

Which database: `DATABASE_URL` when set (its schemas must be migrated: `stockmanager migrate`),
otherwise the embedded PostgreSQL of `stockmanager up`'s data directory. If `up` is running, its
server is used where it listens (the port is in `postmaster.pid`); if not, the server is started
for the import (and migrated, as `up` would) and stopped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from stockmanager.settings import KernelSettings
from stockmanager.upstream.run import import_upstream
from stockmanager.upstream.source import UpstreamFileError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class TargetError(Exception):
    """No database to import into."""


def run_command(path: str, *, dry_run: bool, as_json: bool, data_dir: str) -> int:
    settings = KernelSettings()
    try:
        with target_database(Path(data_dir)) as database_url:
            report = asyncio.run(
                import_upstream(Path(path), database_url, tz=settings.tz, dry_run=dry_run)
            )
    except UpstreamFileError as exc:
        return _fail(str(exc), "invalid_upstream_file", as_json, EXIT_BAD_INPUT)
    except TargetError as exc:
        return _fail(str(exc), "no_database", as_json, EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - the transaction rolled back: say so and why
        return _fail(
            f"import failed, nothing was written: {type(exc).__name__}: {exc}",
            "import_failed",
            as_json,
            EXIT_FAILED,
        )
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(report.as_text())
    sys.stdout.flush()
    return EXIT_OK


def _fail(message: str, code: str, as_json: bool, status: int) -> int:
    if as_json:
        sys.stdout.buffer.write(orjson.dumps({"error": message, "code": code}) + b"\n")
        sys.stdout.flush()
    print(f"stockmanager import-upstream: {message}", file=sys.stderr, flush=True)
    return status


@contextmanager
def target_database(data_dir: Path) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        from stockmanager.cli import migration_order
        from stockmanager.migrations import behind

        late = behind(configured, migration_order())
        if late:
            raise TargetError(
                "schemas behind their migration head ("
                + ", ".join(sorted(late))
                + "): run `stockmanager migrate` first"
            )
        yield configured
        return
    from stockmanager.embedded import EmbeddedPostgres, EmbeddedServerError

    pgdata = data_dir.resolve() / "postgres"
    if not (pgdata / "PG_VERSION").exists():
        raise TargetError(
            f"no database: DATABASE_URL is not set and {data_dir} holds no embedded PostgreSQL"
            " (run `stockmanager up` once, or set DATABASE_URL)"
        )
    server = EmbeddedPostgres(pgdata)
    try:
        url = server.start()
    except EmbeddedServerError:
        # `up` owns it and it is running: use it where it listens.
        yield _running_url(pgdata, server.database)
        return
    try:
        from stockmanager.cli import migrate

        migrate(url)
        yield url
    finally:
        server.stop()


def _running_url(pgdata: Path, database: str) -> str:
    """The URL of the embedded server `up` runs (postmaster.pid line 4 is the port)."""
    try:
        port = int((pgdata / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError) as exc:
        raise TargetError(f"{pgdata} is in use but its server's port is unknown ({exc})") from None
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"
