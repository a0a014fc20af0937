"""Shared helpers for the benchmarks: a whole stack on a fresh machine, load, latency stats.

`bench_stack()` starts embedded PostgreSQL and Redis in a temporary directory (or uses
DATABASE_URL / REDIS_URL when set), runs the migrations and starts the gateway and every service
as real processes (tests/support/stack.py); `bench_stack(tree=prepare(REV))` does the same
with another commit's code and venv (bench/baseline.py, `--baseline REV`). `run_load()` drives
one request shape at a fixed concurrency with aiohttp and returns latency percentiles and
throughput.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.baseline import WORKING, Tree, bootstrap_root, embedded_servers
from bench.baseline import migrate as migrate_tree
from stockmanager.embedded import EmbeddedPostgres, EmbeddedRedis
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity
from stockmanager.supervisor import ManagedSpec, RestartPolicy
from tests.support.stack import Stack, start_stack


@dataclass
class BenchStack:
    stack: Stack
    database_url: str
    postgres_pid: int | None = None  # None when DATABASE_URL points elsewhere
    redis_pid: int | None = None
    # The embedded servers (None when DATABASE_URL / REDIS_URL point elsewhere): the fault
    # bench kills and starts them again.
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def __iter__(self) -> Iterator[Any]:
        """`stack, database_url = bench` (the shape `bench_stack()` first yielded)."""
        return iter((self.stack, self.database_url))

    def cpu_meter(self, *services: str) -> CpuMeter:
        """CPU time of the gateway, the named services, PostgreSQL and Redis on this machine."""
        pids = {name: (self.stack.supervisor.pid(name), False) for name in ("gateway", *services)}
        pids["postgres"] = (self.postgres_pid, True)  # the postmaster and its backends
        pids["redis"] = (self.redis_pid, False)
        return CpuMeter({name: (pid, tree) for name, (pid, tree) in pids.items() if pid})


@contextmanager
def bench_stack(
    *,
    extra_env: dict[str, str] | None = None,
    restart: RestartPolicy | None = None,
    tree: Tree = WORKING,
) -> Iterator[BenchStack]:
    """Embedded servers + migrations + every process as real processes, stopped after.
    `restart`: the supervisor's RestartPolicy (used while `run_until_stopped()` runs); with one,
    the supervisor also watches the embedded servers and starts them again (as `up` does).
    `tree`: another commit's tree (bench/baseline.py): its own embedded servers in their own
    data directory (DATABASE_URL / REDIS_URL are not used), migrations, root account and
    processes, all run by its code and venv."""
    if not tree.is_working:
        with _tree_stack(tree, extra_env) as bench:
            yield bench
        return
    from stockmanager.cli import migrate

    with ExitStack() as cleanup:
        root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sm-bench-")))
        database_url = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        postgres_pid = redis_pid = None
        postgres = redis = None
        if not database_url:
            postgres = EmbeddedPostgres(root / "postgres")
            database_url = postgres.start()
            postgres_pid = postgres.pid
            cleanup.callback(postgres.stop)
        if not redis_url:
            redis = EmbeddedRedis(root / "redis")
            redis_url = redis.start()
            redis_pid = redis.pid
            cleanup.callback(redis.stop)
        migrate(database_url)
        servers = [
            _watched(name, server)
            for name, server in (("postgres", postgres), ("redis", redis))
            if server is not None and restart is not None
        ]
        stack = cleanup.enter_context(
            start_stack(
                database_url=database_url,
                redis_url=redis_url,
                log_dir=root,
                extra_env=extra_env,
                restart=restart,
                servers=servers,
            )
        )
        yield BenchStack(stack, database_url, postgres_pid, redis_pid, postgres, redis)


@contextmanager
def _tree_stack(tree: Tree, extra_env: dict[str, str] | None) -> Iterator[BenchStack]:
    with ExitStack() as cleanup:
        root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sm-baseline-")))
        servers = cleanup.enter_context(embedded_servers(tree, root))
        migrate_tree(tree, servers.database_url)
        stack = cleanup.enter_context(
            start_stack(
                database_url=servers.database_url,
                redis_url=servers.redis_url,
                log_dir=root,
                extra_env={**(extra_env or {}), **tree.env},
                python=tree.python,
                services=tree.services(),
                bootstrap=lambda env: bootstrap_root(tree, env),
            )
        )
        yield BenchStack(stack, servers.database_url, servers.postgres_pid, servers.redis_pid)


def _watched(name: str, server: EmbeddedPostgres | EmbeddedRedis) -> ManagedSpec:
    """An embedded server as `stockmanager up` has its supervisor watch it."""
    return ManagedSpec(
        name,
        start=server.recover,
        stop=server.stop,
        pid=lambda: server.pid,
        returncode=lambda: server.returncode,
    )


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """utime + stime of a process; with `reaped_children`, plus what its children that have
    already exited used (PostgreSQL backends of closed connections end up there)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds used by some processes (Linux /proc), to report cost per request: on a
    shared machine latency depends on everyone's load, CPU per request does not (much)."""

    def __init__(self, pids: dict[str, tuple[int, bool]]) -> None:
        self.pids = pids  # name -> (pid, include its children)

    def sample(self) -> dict[str, float]:
        totals = {}
        for name, (pid, tree) in self.pids.items():
            own = cpu_seconds(pid, reaped_children=tree)
            totals[name] = own + sum(cpu_seconds(child) for child in _children(pid) if tree)
        return totals

    @staticmethod
    def per_request_ms(
        before: dict[str, float], after: dict[str, float], requests: int
    ) -> dict[str, float]:
        return {name: (after[name] - before[name]) * 1000 / requests for name in before}


def signed_headers(
    stack: Stack, *, user_id: int = 1, username: str = "root", role: str = "root"
) -> dict[str, str]:
    """The identity header the gateway would send (valid for the identity max age, 60 s)."""
    identity = Identity(
        user_id=user_id,
        username=username,
        role=role,
        request_id="bench",
        ip="127.0.0.1",
        issued_at=time.time(),
    )
    return {IDENTITY_HEADER: sign_identity(identity, stack.env["STOCKMANAGER_INTERNAL_SECRET"])}


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank p-th percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclass(frozen=True)
class LoadResult:
    label: str
    requests: int
    seconds: float
    latencies_ms: list[float]

    @classmethod
    def merge(cls, parts: list[LoadResult]) -> LoadResult:
        """Several runs of one scenario as one result (requests and time add up)."""
        return cls(
            parts[0].label,
            sum(part.requests for part in parts),
            sum(part.seconds for part in parts),
            [latency for part in parts for latency in part.latencies_ms],
        )

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def row(self) -> str:
        return (
            f"| {self.label} | {self.requests} | {self.p50:.1f} | {self.p95:.1f} | "
            f"{self.p99:.1f} | {self.throughput:.0f} |"
        )


TABLE_HEADER = (
    "| scenario | requests | p50 ms | p95 ms | p99 ms | req/s |\n|---|---:|---:|---:|---:|---:|"
)

RequestFactory = Callable[[int], tuple[str, dict[str, str]]]


async def run_load(
    label: str,
    make_request: RequestFactory,
    *,
    concurrency: int = 8,
    requests: int = 2000,
    warmup: int = 200,
    cookies: dict[str, str] | None = None,
) -> LoadResult:
    """GET `requests` URLs from `make_request(i)` with `concurrency` workers; 200 expected."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, cookies=cookies) as session:

        async def fetch(index: int) -> float:
            url, headers = make_request(index)
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{label}: {url} answered {response.status}")
            return (time.perf_counter() - started) * 1000

        if warmup:
            await _drive(fetch, concurrency, warmup)
        started = time.perf_counter()
        latencies = await _drive(fetch, concurrency, requests)
        elapsed = time.perf_counter() - started
    return LoadResult(label, requests, elapsed, latencies)


async def _drive(
    fetch: Callable[[int], Awaitable[float]], concurrency: int, total: int
) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for index in counter:
            latencies.append(await fetch(index))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def machine() -> str:
    cpus = os.cpu_count()
    python = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs, Python {python}"


PostFactory = Callable[[int], tuple[str, dict[str, str], bytes]]


async def run_post_load(
    label: str,
    make_request: PostFactory,
    *,
    concurrency: int = 8,
    requests: int = 2000,
    warmup: int = 100,
    expected_status: int = 201,
    cookies: dict[str, str] | None = None,
) -> LoadResult:
    """POST `requests` JSON bodies from `make_request(i)` -> (url, headers, body) with
    `concurrency` workers (one keep-alive connection each); any other status than
    `expected_status` aborts the run."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, cookies=cookies) as session:

        async def send(index: int) -> float:
            url, headers, body = make_request(index)
            started = time.perf_counter()
            async with session.post(
                url, data=body, headers={"content-type": "application/json", **headers}
            ) as response:
                payload = await response.read()
                if response.status != expected_status:
                    raise RuntimeError(
                        f"{label}: {url} answered {response.status}: {payload[:300]!r}"
                    )
            return (time.perf_counter() - started) * 1000

        if warmup:
            await _drive(send, concurrency, warmup)
        started = time.perf_counter()
        latencies = await _drive(send, concurrency, requests)
        elapsed = time.perf_counter() - started
    return LoadResult(label, requests, elapsed, latencies)
