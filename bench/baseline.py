"""`--baseline REV`: run another commit's stack in the same benchmark run as the working tree's.

On this shared machine absolute numbers move by half between runs; ratios measured in one run,
with the two stacks' rounds interleaved, do not. `prepare(rev)` checks REV out as a git worktree
in a cache directory (`$STOCKMANAGER_BASELINE_CACHE`, default /tmp/stockmanager-baselines/<sha>,
reused when present) with a virtual environment of its own (`pip install -e '.[dev,embedded]'`,
or '.[dev]' at commits without the `embedded` extra) and returns it as a `Tree`.
`bench.common.bench_stack(tree=...)` then starts that tree's embedded PostgreSQL and Redis,
migrations, root account, gateway and services with its own Python; the load generator and the
checks stay the working tree's code.

A benchmark uses it like this (bench/sales_bench.py):

    add_argument(parser)                      # --baseline REV
    trees = trees_for(args.baseline)          # {"working": WORKING, "baseline": Tree(...)}
    with ExitStack() as stacks:
        benches = {label: stacks.enter_context(bench_stack(tree=tree)) for ...}
        ... rounds: for each round, for each label: load one stack at a time ...
    ratio_rows(...)                           # the comparison table for the results file
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("STOCKMANAGER_BASELINE_CACHE", "/tmp/stockmanager-baselines"))
STAMP = ".bench-installed"


@dataclass(frozen=True)
class Tree:
    """A source tree and the Python that runs its server processes."""

    root: Path
    python: str
    label: str  # "working tree" or "baseline <sha>"
    rev: str = ""  # the commit, for a baseline

    @property
    def is_working(self) -> bool:
        return self.root == REPO

    @property
    def env(self) -> dict[str, str]:
        """Environment for this tree's processes: its own code first, never the working
        tree's (`python -m` would otherwise put the current directory on sys.path)."""
        if self.is_working:
            return {}
        return {"PYTHONPATH": str(self.root), "PYTHONSAFEPATH": "1"}

    def run(self, code: str, *args: str, env: dict[str, str] | None = None) -> str:
        """Run `code` with this tree's Python (in its root); its stdout."""
        done = subprocess.run(
            [self.python, "-c", code, *args],
            cwd=self.root,
            env={**os.environ, **(env or {}), **self.env},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.label}: {code[:60]!r} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def services(self) -> list[tuple[str, str]]:
        """(name, gateway URL setting) of every service this tree has."""
        out = self.run(
            "import json; from stockmanager.cli import available_services as a;"
            "print(json.dumps([(i.name, i.url_setting) for i in a()]))"
        )
        return [(name, setting) for name, setting in json.loads(out)]


WORKING = Tree(REPO, sys.executable, "working tree")


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run REV's stack (git worktree + venv, cached in "
        f"{CACHE}/<sha>) in the same run, interleaved with the working tree's, and report "
        "ratios",
    )


def trees_for(baseline: str | None) -> dict[str, Tree]:
    """The stacks a run measures: the working tree, and REV's when `--baseline REV`."""
    trees = {"working": WORKING}
    if baseline:
        trees["baseline"] = prepare(baseline)
    return trees


def prepare(rev: str) -> Tree:
    """REV as a worktree with an installed venv (built once, reused by later runs)."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    home = CACHE / sha
    home.mkdir(parents=True, exist_ok=True)
    root, venv = home / "tree", home / "venv"
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benches preparing the same REV at once
        if not (root / ".git").exists():
            shutil.rmtree(root, ignore_errors=True)
            _git("worktree", "prune")
            _git("worktree", "add", "--detach", str(root), sha)
        if not (venv / STAMP).exists():
            _install(root, venv)
    tree = Tree(root, str(venv / "bin" / "python"), f"baseline {sha[:7]}", sha)
    where = tree.run("import stockmanager; print(stockmanager.__file__)").strip()
    if not Path(where).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"{tree.label}: imports stockmanager from {where}, not from {root}")
    return tree


def _install(root: Path, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    for extras in (".[dev,embedded]", ".[dev]"):
        if Path(uv).exists():
            command = [uv, "pip", "install", "--quiet", "--python", python, "-e", extras]
        else:
            command = [python, "-m", "pip", "install", "--quiet", "-e", extras]
        print(f"baseline: installing {extras} into {venv}", file=sys.stderr, flush=True)
        if _extra_exists(root, extras) and subprocess.run(command, cwd=root).returncode == 0:
            (venv / STAMP).write_text(extras + "\n")
            return
    raise RuntimeError(f"could not install {root} into {venv}")


def _extra_exists(root: Path, extras: str) -> bool:
    """pip only warns about an unknown extra; read REV's pyproject instead."""
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {})
    known = set(project.get("optional-dependencies", {}))
    return set(extras[2:-1].split(",")) <= known


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class ServerHost:
    """A tree's embedded PostgreSQL and Redis, run by that tree's own code in a child process
    (its server versions and settings, not the working tree's)."""

    database_url: str
    redis_url: str
    postgres_pid: int
    redis_pid: int
    process: subprocess.Popen[str] = field(repr=False)


_HOST = """
import json, sys
from pathlib import Path
from stockmanager.embedded import EmbeddedPostgres, EmbeddedRedis
root = Path(sys.argv[1])
postgres, redis = EmbeddedPostgres(root / "postgres"), EmbeddedRedis(root / "redis")
try:
    database_url = postgres.start()
    redis_url = redis.start()
    print(json.dumps([database_url, redis_url, postgres.pid, redis.pid]), flush=True)
    sys.stdin.read()  # until the bench closes our stdin (or exits)
finally:
    redis.stop()
    postgres.stop()
"""


@contextmanager
def embedded_servers(tree: Tree, data_dir: Path) -> Iterator[ServerHost]:
    """Start `tree`'s embedded PostgreSQL and Redis under `data_dir`; stopped after."""
    process = subprocess.Popen(
        [tree.python, "-c", _HOST, str(data_dir)],
        cwd=tree.root,
        env={**os.environ, **tree.env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{tree.label}: embedded servers did not start")
        database_url, redis_url, postgres_pid, redis_pid = json.loads(line)
        yield ServerHost(database_url, redis_url, postgres_pid, redis_pid, process)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def migrate(tree: Tree, database_url: str) -> None:
    tree.run("from stockmanager.cli import migrate; import sys; migrate(sys.argv[1])", database_url)


def bootstrap_root(tree: Tree, env: dict[str, str]) -> None:
    """The root account, created by `tree`'s code with the stack's environment."""
    tree.run("from stockmanager.cli import bootstrap_root; bootstrap_root()", env=env)


def ratio(baseline: float, working: float) -> str:
    """working / baseline as `1.23×` (`—` without a baseline value)."""
    return f"{working / baseline:.2f}×" if baseline else "—"


if __name__ == "__main__":  # python -m bench.baseline REV: prepare the cache ahead of a run
    print(prepare(sys.argv[1] if len(sys.argv) > 1 else "HEAD"))
