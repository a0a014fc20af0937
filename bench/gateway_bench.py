"""Gateway cost benchmark: the working tree's gateway against a baseline commit's gateway, both
in front of the same services, interleaved in one run.

    python -m bench.gateway_bench [--baseline 591f6a2 --requests 400 --rounds 4 --profile]

Starts one stack from the working tree (bench.common.bench_stack) and a second gateway process
whose code is the baseline commit's (`git archive REV`, run with `python -P` and PYTHONPATH on
it, so none of the working tree's modules leak in), on the same Redis and services. The seller
logs in once; the session cookie is valid at both gateways (sessions live in Redis).

Per workload and round, the three paths run one after the other in a rotating order: through
the working tree's gateway, through the baseline's gateway, and straight to the service with
the signed identity header. Reported: p50/p95/p99 and throughput per path, the gateway's added
latency (gateway p50 - direct p50, same run) and each gateway process's CPU per request (from
/proc during its own rounds), with the ratio baseline / working tree.

Workloads: checkout (`POST /api/sales/bulk`, 3 lines) at concurrency 1 and 16, and a cheap
proxied read (`GET /api/products/{id}`) at concurrency 1, where the gateway is a larger share of
the whole. `--profile` samples the working tree's gateway with py-spy during the first checkout
round at concurrency 16 and adds where its event loop spent its time.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import CpuMeter, LoadResult, bench_stack, machine, run_load, run_post_load
from bench.sales_bench import Checkout, DirectIdentity, create_seller, seed_products, verify
from stockmanager.embedded import free_port
from stockmanager.supervisor import Supervisor
from tests.support.stack import gateway_spec

RESULTS = Path(__file__).parent / "results" / "gateway.md"
REPOSITORY = Path(__file__).resolve().parent.parent
PATHS = ("gateway", "baseline gateway", "direct")
WARMUP = 20
Headers = Callable[[], dict[str, str]]
Post = tuple[str, dict[str, str], bytes]
Get = tuple[str, dict[str, str]]


def export_commit(rev: str, target: Path) -> str:
    """The files of `rev` under `target` (no git worktree: the shared checkout stays as it is);
    returns the commit's short hash."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=REPOSITORY, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return commit


@contextmanager
def baseline_gateway(
    source: Path, env: dict[str, str], log_path: Path
) -> Iterator[tuple[str, Supervisor]]:
    """A gateway process running `source`'s code on the stack's Redis and services; yields its
    public base URL and its supervisor."""
    port = free_port()
    spec = gateway_spec("baseline-gateway", port, env)
    # -P: the current directory is not put first on sys.path, so PYTHONPATH decides what is
    # imported (the venv's editable install of the working tree comes after it).
    spec.argv.insert(1, "-P")
    spec.env["PYTHONPATH"] = str(source)
    with log_path.open("w") as out:
        supervisor = Supervisor([spec], out=out)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=90)
            yield f"http://127.0.0.1:{port}", supervisor
        finally:
            supervisor.stop()


class GatewayProfiler:
    """py-spy on one process; summarises the event loop thread's samples by package."""

    GROUPS = (
        ("aiohttp", "aiohttp (upstream client)"),
        ("uvicorn", "uvicorn"),
        ("starlette", "Starlette"),
        ("redis", "redis client"),
        ("logging", "logging"),
        ("asyncio", "asyncio event loop"),
        ("prometheus_client", "prometheus_client"),
        ("/gateway/", "gateway code"),
        ("stockmanager", "kernel (middleware, identity, logs)"),
        ("json", "json"),
        ("hmac", "hmac/hashlib"),
        ("hashlib", "hmac/hashlib"),
    )

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [binary, "record", "-p", str(pid), "-r", "200", "--format", "raw"]
        command += ["-o", str(output), "--nonblocking"]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> list[str]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self_time: dict[str, int] = {}
        functions: dict[str, int] = {}
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = stack.split(";")
            leaf = frames[-1]
            group = next((label for key, label in self.GROUPS if key in leaf), "other")
            self_time[group] = self_time.get(group, 0) + samples
            seen: set[str] = set()
            for frame in frames:
                if ("/gateway/" in frame or "stockmanager/" in frame) and frame not in seen:
                    seen.add(frame)
                    name = frame.split(" (")[0]
                    functions[name] = functions.get(name, 0) + samples
        if not total:
            return ["(no samples)"]
        lines = ["| where the gateway was (self time) | share |", "|---|---:|"]
        for group, samples in sorted(self_time.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {group} | {100 * samples / total:.1f}% |")
        lines += ["", "| gateway/kernel function (inclusive) | share |", "|---|---:|"]
        for name, samples in sorted(functions.items(), key=lambda kv: -kv[1])[:15]:
            lines.append(f"| `{name}` | {100 * samples / total:.1f}% |")
        return lines


@dataclass
class Scenario:
    workload: str
    concurrency: int
    path: str
    result: LoadResult
    gateway_cpu_ms: float  # CPU per request of the gateway process this path went through
    service_cpu_ms: float


async def measure(
    args: argparse.Namespace,
    urls: dict[str, str],
    service_urls: dict[str, str],
    cookies: dict[str, str],
    identity: DirectIdentity,
    checkout: Checkout,
    product_ids: list[int],
    meter: CpuMeter,
    profile: Path | None,
) -> tuple[list[Scenario], int, list[str]]:
    """Every workload: `rounds` rounds of the three paths, their order rotating each round."""
    workloads = (("checkout", 1), ("checkout", 16), ("product read", 1))
    scenarios: list[Scenario] = []
    sales = 0
    profile_lines: list[str] = []
    rng = random.Random(3)
    for workload, concurrency in workloads:
        per_round = args.requests if concurrency > 1 else max(100, args.requests // 2)
        parts: dict[str, list[LoadResult]] = {path: [] for path in PATHS}
        gateway_cpu = dict.fromkeys(PATHS, 0.0)
        service_cpu = dict.fromkeys(PATHS, 0.0)
        for round_number in range(args.rounds):
            shift = round_number % len(PATHS)
            for path in PATHS[shift:] + PATHS[:shift]:
                service = "sales" if workload == "checkout" else "products"
                base = service_urls[service] if path == "direct" else urls[path]
                headers: Headers = identity.headers if path == "direct" else dict
                jar = None if path == "direct" else cookies
                profiler = None
                if profile and path == "gateway" and concurrency == 16 and round_number == 0:
                    profiler = GatewayProfiler(meter.pids["gateway"][0], profile)
                before = meter.sample()
                if workload == "checkout":

                    def sale(_i: int, url: str = base, h: Headers = headers) -> Post:
                        return f"{url}/api/sales/bulk", h(), checkout.body()

                    result = await run_post_load(
                        f"{path} {workload} c={concurrency}",
                        sale,
                        concurrency=concurrency,
                        requests=per_round,
                        warmup=WARMUP,
                        cookies=jar,
                    )
                    sales += per_round + WARMUP
                else:

                    def read(_i: int, url: str = base, h: Headers = headers) -> Get:
                        return f"{url}/api/products/{rng.choice(product_ids)}", h()

                    result = await run_load(
                        f"{path} {workload} c={concurrency}",
                        read,
                        concurrency=concurrency,
                        requests=per_round,
                        warmup=WARMUP,
                        cookies=jar,
                    )
                used = CpuMeter.per_request_ms(before, meter.sample(), per_round + WARMUP)
                if profiler is not None:
                    profile_lines = profiler.stop()
                parts[path].append(result)
                process = {"gateway": "gateway", "baseline gateway": "baseline gateway"}.get(path)
                gateway_cpu[path] += (used[process] if process else 0.0) / args.rounds
                service_cpu[path] += used[service] / args.rounds
        for path in PATHS:
            merged = LoadResult.merge(parts[path])
            scenarios.append(
                Scenario(workload, concurrency, path, merged, gateway_cpu[path], service_cpu[path])
            )
            print(
                f"{workload} c={concurrency} {path}: p50 {merged.p50:.2f} ms, "
                f"{merged.throughput:.0f}/s, gateway CPU {gateway_cpu[path]:.3f} ms/request",
                flush=True,
            )
    return scenarios, sales, profile_lines


def report(
    scenarios: list[Scenario],
    args: argparse.Namespace,
    commit: str,
    verdict: str,
    profile: list[str],
) -> str:
    lines = [
        "# Gateway benchmark",
        "",
        f"Command: `python -m bench.gateway_bench --baseline {args.baseline} "
        f"--requests {args.requests} --rounds {args.rounds}`"
        + (" (with `--profile`)" if profile else ""),
        f"Baseline: `{commit}`, its gateway as a second process in front of the same services. "
        f"Machine: {machine()}, load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        "| workload | c | path | requests | per s | p50 ms | p95 ms | p99 ms | gateway CPU "
        "ms/request | service CPU ms/request |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in scenarios:
        r = sc.result
        gateway_cpu = f"{sc.gateway_cpu_ms:.3f}" if sc.path != "direct" else "-"
        lines.append(
            f"| {sc.workload} | {sc.concurrency} | {sc.path} | {r.requests} | "
            f"{r.throughput:.0f} | {r.p50:.2f} | {r.p95:.2f} | {r.p99:.2f} | {gateway_cpu} | "
            f"{sc.service_cpu_ms:.3f} |"
        )
    lines += [
        "",
        "| workload | c | added p50 ms (working tree) | added p50 ms (baseline) | gateway CPU "
        "ms/request (working tree) | (baseline) | CPU ratio baseline / working tree |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(sc.workload, sc.concurrency, sc.path): sc for sc in scenarios}
    for workload, concurrency in dict.fromkeys((sc.workload, sc.concurrency) for sc in scenarios):
        new = by_key[(workload, concurrency, "gateway")]
        old = by_key[(workload, concurrency, "baseline gateway")]
        direct = by_key[(workload, concurrency, "direct")]
        ratio = old.gateway_cpu_ms / new.gateway_cpu_ms if new.gateway_cpu_ms else float("inf")
        lines.append(
            f"| {workload} | {concurrency} | {new.result.p50 - direct.result.p50:+.2f} | "
            f"{old.result.p50 - direct.result.p50:+.2f} | {new.gateway_cpu_ms:.3f} | "
            f"{old.gateway_cpu_ms:.3f} | {ratio:.2f}x |"
        )
    lines += ["", f"Consistency check after the run: {verdict}", ""]
    if profile:
        lines += [
            "py-spy profile of the working tree's gateway (first checkout round at "
            "concurrency 16):",
            "",
            *profile,
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="591f6a2", help="commit whose gateway to compare")
    parser.add_argument(
        "--requests", type=int, default=400, help="requests per round at c=16 (half at c=1)"
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway (dev extra)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sm-gateway-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        commit = export_commit(args.baseline, scratch / "baseline")
        with bench_stack() as bench:
            stack = bench.stack
            product_ids = seed_products(bench.database_url, args.products, random.Random(42))
            seller = create_seller(stack)
            with baseline_gateway(
                scratch / "baseline", stack.env, scratch / "baseline-gateway.log"
            ) as (baseline_url, other):
                baseline_pid = other.pid("baseline-gateway")
                assert baseline_pid is not None
                meter = bench.cpu_meter("sales", "products")
                meter.pids["baseline gateway"] = (baseline_pid, False)
                urls = {"gateway": stack.base_url, "baseline gateway": baseline_url}
                checkout = Checkout(product_ids, seed=7)
                identity = DirectIdentity(seller, stack.env["STOCKMANAGER_INTERNAL_SECRET"])
                scenarios, sales, profile = asyncio.run(
                    measure(
                        args,
                        urls,
                        {name: stack.service_urls[name][0] for name in ("sales", "products")},
                        seller.cookies,
                        identity,
                        checkout,
                        product_ids,
                        meter,
                        scratch / "gateway.pyspy" if args.profile else None,
                    )
                )
            verdict = verify(bench.database_url, seller, product_ids, checkout, sales)
    text = report(scenarios, args, commit, verdict, profile)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else ""
    marker = "\n## Analysis"
    analysis = existing[existing.index(marker) :] if marker in existing else ""
    args.output.write_text(text + analysis)
    print(text)
    return 0 if verdict.startswith("OK") else 1


if __name__ == "__main__":
    sys.exit(main())
