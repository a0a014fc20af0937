"""A stack of its own (fresh migrated database, own Redis) for the import tests: an import
brings a whole shop over, which the session's shared stack must never see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.isolated import isolated_backends
from tests.support.stack import Stack, start_stack


@dataclass
class ImportStack:
    stack: Stack
    database_url: str

    def run(self, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """`stockmanager import-upstream PATH ARGS` as a user runs it (a subprocess)."""
        env = {**os.environ, "DATABASE_URL": self.database_url}
        return subprocess.run(
            [sys.executable, "-m", "stockmanager", "import-upstream", str(path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def run_json(self, path: Path, *args: str) -> dict[str, Any]:
        done = self.run(path, "--json", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report


@pytest.fixture(scope="module")
def import_stack(migrated: str, data_root: Path) -> Iterator[ImportStack]:
    log_dir = data_root / "upstream-import"
    log_dir.mkdir(exist_ok=True)
    with (
        isolated_backends(migrated, data_root, "upstream_import") as (database_url, redis_url),
        start_stack(database_url=database_url, redis_url=redis_url, log_dir=log_dir) as stack,
    ):
        yield ImportStack(stack, database_url)
