"""Without DATABASE_URL, import-upstream uses the embedded PostgreSQL of `up`'s data directory:
where it listens while `up` runs, or started (and stopped) by the command itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from stockmanager.cli import migrate
from stockmanager.embedded import EmbeddedPostgres
from tests.upstream_import.shops import older_shop


def _import(path: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "stockmanager",
            "import-upstream",
            str(path),
            "--json",
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_embedded_database_of_a_data_directory(tmp_path: Path) -> None:
    shop = older_shop(tmp_path / "shop.db")
    data_dir = tmp_path / "data"
    missing = _import(shop, data_dir)
    assert missing.returncode == 1 and json.loads(missing.stdout)["code"] == "no_database"

    server = EmbeddedPostgres(data_dir / "postgres")
    url = server.start()  # as `up` does: it holds the data directory's lock
    try:
        migrate(url)
        done = _import(shop, data_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["counts"]["sales"]["imported"] == 5
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM sales.sales").fetchone() == (5,)
    finally:
        server.stop()

    # Nothing runs: the command starts the server, finds everything imported, stops it.
    again = _import(shop, data_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["counts"]["sales"]["already"] == 5
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
