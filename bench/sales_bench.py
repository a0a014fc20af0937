"""Checkout benchmark: bulk sales of 3 lines at concurrency 1, 16 and 64, via the gateway and
straight to the sales service, in the same run.

    python -m bench.sales_bench [--requests 2000 --products 500 --output bench/results/sales.md]

Starts its own stack (embedded PostgreSQL and Redis in a temporary directory unless
DATABASE_URL / REDIS_URL are set; migrations; gateway and every service as real processes, so
the outbox relay and the audit/notifications/metrics consumers run as in production). Seeds
products with ample stock straight into `products.items`, creates one seller through the users
API and logs in once. Each request is `POST /api/sales/bulk` with 3 distinct random products
(1-3 units each): through the gateway with the session cookie, and directly to the sales
service with the signed identity header the gateway would send. Reports sales/s, p50, p95,
p99 and the gateway's added latency (gateway p50 - direct p50 at the same concurrency), checks
afterwards that every sale, line and stock unit is accounted for, and writes
`bench/results/sales.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from bench.baseline import Tree, ratio, trees_for
from bench.baseline import add_argument as add_baseline_argument
from bench.common import (
    BenchStack,
    CpuMeter,
    LoadResult,
    PostFactory,
    bench_stack,
    machine,
    run_post_load,
)
from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity
from tests.support.stack import Stack

RESULTS = Path(__file__).parent / "results" / "sales.md"
CONCURRENCY = (1, 16, 64)
STOCK = 10_000_000
LINES = 3


@dataclass(frozen=True)
class Seller:
    user_id: int
    username: str
    cookies: dict[str, str]


def seed_products(database_url: str, count: int, rng: random.Random) -> list[int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY products.items (barcode, name, quantity, min_quantity, price) FROM STDIN"
            ) as copy,
        ):
            for n in range(count):
                price = f"{rng.randint(50, 99_999) / 100:.2f}"
                copy.write_row((f"bench{n:07d}", f"Bench product {n}", STOCK, 5, price))
        return [
            row[0]
            for row in conn.execute(
                "SELECT id FROM products.items WHERE barcode LIKE 'bench%' ORDER BY id"
            )
        ]


def create_seller(stack: Stack) -> Seller:
    username, password = "bench-seller", "bench-password"
    with stack.root() as root:
        response = root.post(
            "/api/users",
            json={
                "username": username,
                "email": "bench@example.test",
                "password": password,
                "role": "vendedor",
            },
        )
        response.raise_for_status()
    client = stack.login(username, password)  # logged in once; every request reuses it
    with client:
        session = client.get("/api/session").json()
        return Seller(session["user_id"], username, dict(client.cookies))


class Checkout:
    """Request factory: 3 distinct random products per sale, 1-3 units each."""

    def __init__(self, products: list[int], seed: int) -> None:
        self.products = products
        self.rng = random.Random(seed)
        self.units = 0
        self.lines = 0

    def body(self) -> bytes:
        items = [
            {"item_id": item, "quantity": self.rng.randint(1, 3)}
            for item in self.rng.sample(self.products, LINES)
        ]
        self.units += sum(item["quantity"] for item in items)
        self.lines += len(items)
        return orjson.dumps({"items": items, "payment_method": "Efectivo"})


class DirectIdentity:
    """The gateway's signed identity header, re-signed well within its 60 s validity."""

    def __init__(self, seller: Seller, secret: str) -> None:
        self.seller = seller
        self.secret = secret
        self.header = ""
        self.signed_at = 0.0

    def headers(self) -> dict[str, str]:
        now = time.time()
        if now - self.signed_at > 20:
            identity = Identity(
                self.seller.user_id, self.seller.username, "vendedor", "bench", "127.0.0.1", now
            )
            self.header = sign_identity(identity, self.secret)
            self.signed_at = now
        return {IDENTITY_HEADER: self.header}


def whole_stack_meter(bench: BenchStack) -> CpuMeter:
    """Every process of the stack, PostgreSQL, Redis and this process (load + supervisor)."""
    services = [name for name in bench.stack.supervisor.names if name != "gateway"]
    meter = bench.cpu_meter(*services)
    meter.pids["load generator + supervisor"] = (os.getpid(), False)
    return meter


class Profiler:
    """py-spy sampling of the sales service during one scenario (optional: `--profile`)."""

    GROUPS = (
        ("psycopg", "psycopg (driver)"),
        ("services/sales", "sales service code"),
        ("uvicorn", "uvicorn"),
        ("fastapi", "FastAPI / Starlette"),
        ("starlette", "FastAPI / Starlette"),
        ("stockmanager/events/relay", "outbox relay"),
        ("stockmanager", "kernel (identity, logs, metrics)"),
        ("asyncio", "asyncio event loop"),
        ("redis", "redis client (relay, log shipping)"),
        ("logging", "logging"),
        ("sqlalchemy", "SQLAlchemy (relay)"),
    )

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [
                shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                "record",
                "-p",
                str(pid),
                "-r",
                "200",
                "--format",
                "raw",
                "-o",
                str(output),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> list[str]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        return self.summary()

    def summary(self) -> list[str]:
        """Share of the event loop thread's samples by the code the sample was in (self time),
        and the inclusive share of a few functions of interest."""
        self_time: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if "Runner.run" not in stack or not count.isdigit():
                continue  # only the event loop thread
            samples = int(count)
            total += samples
            frames = stack.split(";")
            group = next((label for key, label in self.GROUPS if key in frames[-1]), "other")
            self_time[group] = self_time.get(group, 0) + samples
            seen = set()
            for frame in frames:
                name = frame.split(" (")[0]
                if name in INTERESTING and name not in seen:
                    seen.add(name)
                    inclusive[name] = inclusive.get(name, 0) + samples
        if not total:
            return ["(no samples)"]
        lines = ["| where the event loop was (self time) | share |", "|---|---:|"]
        for group, samples in sorted(self_time.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {group} | {100 * samples / total:.1f}% |")
        lines += ["", "| inside (inclusive) | share |", "|---|---:|"]
        for name in INTERESTING:
            lines.append(f"| `{name}` | {100 * inclusive.get(name, 0) / total:.1f}% |")
        return lines


INTERESTING = (
    "run_sale",
    "transaction",
    "claim_or_replay",
    "reserve",
    "sell",
    "write_events",
    "_recorded",
    "OutboxRelay.run",
    "solve_dependencies",
    "RequestContextMiddleware.__call__",
)


@dataclass
class Scenario:
    concurrency: int
    path: str
    result: LoadResult
    load_before: float
    cpu_ms_per_sale: dict[str, float]
    stack: str = "working"  # "working" or "baseline" (bench/baseline.py)


@dataclass
class Target:
    """One stack under load: the working tree's, or the baseline's with `--baseline REV`."""

    label: str
    tree: Tree
    bench: BenchStack
    seller: Seller
    products: list[int]
    checkout: Checkout
    meter: CpuMeter


WARMUP = 20  # per round


Run = tuple[Target, str, PostFactory, dict[str, str] | None]


def _paths(target: Target) -> list[Run]:
    """The target's two paths: through the gateway (cookie) and straight to the service."""
    stack = target.bench.stack
    gateway_url = f"{stack.base_url}/api/sales/bulk"
    direct_url = f"{stack.service_urls['sales'][0]}/api/sales/bulk"
    identity = DirectIdentity(target.seller, stack.env["STOCKMANAGER_INTERNAL_SECRET"])

    def via_gateway(_i: int) -> tuple[str, dict[str, str], bytes]:
        return gateway_url, {}, target.checkout.body()

    def direct(_i: int) -> tuple[str, dict[str, str], bytes]:
        return direct_url, identity.headers(), target.checkout.body()

    return [
        (target, "gateway", via_gateway, target.seller.cookies),
        (target, "direct", direct, None),
    ]


async def measure(
    targets: list[Target], requests: int, rounds: int, profile: Path | None = None
) -> tuple[list[Scenario], list[str]]:
    """Per concurrency, `rounds` rounds; each round loads every stack in turn (one at a time)
    through the gateway and then directly (the machine's load drifts; interleaving keeps the
    stacks and paths comparable); merged per stack and path."""
    runs = [run for target in targets for run in _paths(target)]
    scenarios = []
    profile_lines: list[str] = []
    for concurrency in CONCURRENCY:
        total = requests if concurrency > 1 else max(200, requests // 5)
        per_round = max(1, total // rounds)
        parts: dict[tuple[str, str], list[LoadResult]] = {}
        cpu: dict[tuple[str, str], dict[str, float]] = {}
        loads: dict[tuple[str, str], list[float]] = {}
        for round_number in range(rounds):
            for target, name, factory, cookies in runs:
                key = (target.label, name)
                profiler = None
                if (
                    profile
                    and concurrency == 16
                    and name == "gateway"
                    and round_number == 0
                    and target.tree.is_working
                ):
                    sales_pid = target.bench.stack.supervisor.pid("sales")
                    assert sales_pid is not None
                    profiler = Profiler(sales_pid, profile)
                loads.setdefault(key, []).append(os.getloadavg()[0])
                before = target.meter.sample()
                parts.setdefault(key, []).append(
                    await run_post_load(
                        f"{name} c={concurrency}",
                        factory,
                        concurrency=concurrency,
                        requests=per_round,
                        warmup=WARMUP,
                        cookies=cookies,
                    )
                )
                used = CpuMeter.per_request_ms(before, target.meter.sample(), per_round + WARMUP)
                if profiler is not None:
                    profile_lines = profiler.stop()
                for process, ms in used.items():
                    cpu.setdefault(key, {})
                    cpu[key][process] = cpu[key].get(process, 0.0) + ms / rounds
        for (label, name), results in parts.items():
            result = LoadResult.merge(results)
            load = sum(loads[(label, name)]) / len(loads[(label, name)])
            scenario = Scenario(concurrency, name, result, load, cpu[(label, name)], label)
            scenarios.append(scenario)
            print(
                f"{label} c={concurrency} {name}: {result.throughput:.0f} sales/s, p50 "
                f"{result.p50:.1f} ms, p99 {result.p99:.1f} ms, CPU/sale "
                f"{sum(scenario.cpu_ms_per_sale.values()):.2f} ms (load avg {load:.1f})",
                flush=True,
            )
    return scenarios, profile_lines


def verify(
    database_url: str, seller: Seller, products: list[int], checkout: Checkout, sales: int
) -> str:
    """Every request made exactly one sale with its lines; stock moved by the units sold."""
    with psycopg.connect(database_url) as conn:
        count, lines, units, consumed, ledger = (
            conn.execute(
                "SELECT (SELECT count(DISTINCT s.id) FROM sales.sales s WHERE s.vendor_id = %(v)s),"
                " count(l.id), coalesce(sum(l.quantity), 0),"
                " (SELECT sum(%(stock)s - quantity) FROM products.items WHERE id = ANY(%(p)s)),"
                " (SELECT -sum(delta) FROM products.stock_movements WHERE item_id = ANY(%(p)s))"
                " FROM sales.sales s JOIN sales.sale_lines l ON l.sale_id = s.id"
                " WHERE s.vendor_id = %(v)s",
                {"v": seller.user_id, "stock": STOCK, "p": products},
            ).fetchone()
            or (None,) * 5
        )
    ok = (count, lines, units, consumed, ledger) == (
        sales,
        checkout.lines,
        checkout.units,
        checkout.units,
        checkout.units,
    )
    return (
        f"{'OK' if ok else 'MISMATCH'}: {count} sales (expected {sales}), {lines} lines "
        f"(expected {checkout.lines}), units sold {units} = stock consumed {consumed} = "
        f"ledger {ledger} (expected {checkout.units})"
    )


def report(
    scenarios: list[Scenario],
    verdicts: dict[str, str],
    args: argparse.Namespace,
    profile: list[str],
    trees: dict[str, Tree],
) -> str:
    baseline = f" --baseline {args.baseline}" if args.baseline else ""
    lines = [
        "# Sales checkout benchmark",
        "",
        f"Command: `python -m bench.sales_bench --requests {args.requests} "
        f"--products {args.products} --rounds {args.rounds}{baseline}`",
        f"Machine: {machine()}; the whole stack (PostgreSQL, Redis, gateway, every service with "
        "its relay and consumers, the load generator) on it.",
        "",
        "Each request: `POST /api/sales/bulk` with 3 distinct random products out of "
        f"{args.products} (1-3 units each), one seller logged in once. Gateway = session cookie "
        "through the gateway; direct = signed identity header straight to the sales service.",
        "",
    ]
    if len(trees) > 1:
        lines += [
            f"Stacks: working = the working tree ({_describe_head()}); baseline = "
            f"{trees['baseline'].rev[:7]} (git worktree + its own venv, its own embedded "
            "PostgreSQL and Redis; bench/baseline.py). Their rounds alternate in this one run "
            "(one stack loaded at a time), so the ratios compare like with like; absolute "
            "numbers move with the machine's load.",
            "",
            *comparison(scenarios),
            "",
        ]
    for label in trees:
        lines += _stack_section(label, [sc for sc in scenarios if sc.stack == label], trees)
        lines += ["", f"Consistency check after the run: {verdicts[label]}", ""]
    if profile:
        lines += [
            "py-spy profile of the working tree's sales service (event loop thread, first "
            "gateway round at concurrency 16):",
            "",
            *profile,
            "",
        ]
    return "\n".join(lines)


def comparison(scenarios: list[Scenario]) -> list[str]:
    """Working tree vs baseline per scenario: throughput, latency and CPU per sale."""
    by_key = {(sc.stack, sc.concurrency, sc.path): sc for sc in scenarios}
    lines = [
        "| concurrency | path | sales/s base → work | × | p50 ms base → work | p99 ms base → "
        "work | CPU ms/sale base → work | × |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency in CONCURRENCY:
        for path in ("gateway", "direct"):
            base = by_key[("baseline", concurrency, path)]
            work = by_key[("working", concurrency, path)]
            base_cpu = sum(base.cpu_ms_per_sale.values())
            work_cpu = sum(work.cpu_ms_per_sale.values())
            lines.append(
                f"| {concurrency} | {path} | {base.result.throughput:.0f} → "
                f"{work.result.throughput:.0f} | "
                f"{ratio(base.result.throughput, work.result.throughput)} | "
                f"{base.result.p50:.1f} → {work.result.p50:.1f} | "
                f"{base.result.p99:.1f} → {work.result.p99:.1f} | "
                f"{base_cpu:.2f} → {work_cpu:.2f} | {ratio(base_cpu, work_cpu)} |"
            )
    return lines


def _describe_head() -> str:
    head = subprocess.run(
        ["git", "log", "-1", "--format=%h"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"HEAD {head}{' + uncommitted changes' if dirty else ''}"


def _stack_section(label: str, scenarios: list[Scenario], trees: dict[str, Tree]) -> list[str]:
    lines = []
    if len(trees) > 1:
        lines += [f"## {label}: {trees[label].label}", ""]
    lines += [
        "| concurrency | path | sales | sales/s | p50 ms | p95 ms | p99 ms | load avg |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in scenarios:
        r = sc.result
        lines.append(
            f"| {sc.concurrency} | {sc.path} | {r.requests} | {r.throughput:.0f} | "
            f"{r.p50:.1f} | {r.p95:.1f} | {r.p99:.1f} | {sc.load_before:.1f} |"
        )
    lines += ["", "Gateway added latency (gateway p50 - direct p50, same run):", ""]
    by_key = {(sc.concurrency, sc.path): sc for sc in scenarios}
    for concurrency in CONCURRENCY:
        gateway, direct = by_key[(concurrency, "gateway")], by_key[(concurrency, "direct")]
        lines.append(
            f"- concurrency {concurrency}: {gateway.result.p50 - direct.result.p50:+.2f} ms"
        )
    names = sorted({name for sc in scenarios for name in sc.cpu_ms_per_sale})
    lines += [
        "",
        "CPU per sale by process, in ms (from /proc; warm-up sales included; postgres counts "
        "every backend, so it includes the consumers' and relays' transactions; the load "
        "generator shares its process with the supervisor, which relays every process's log "
        "lines of both stacks when there are two):",
        "",
        "| process | " + " | ".join(f"c={sc.concurrency} {sc.path}" for sc in scenarios) + " |",
        "|---|" + "---:|" * len(scenarios),
    ]
    for name in names:
        cells = " | ".join(f"{sc.cpu_ms_per_sale.get(name, 0.0):.2f}" for sc in scenarios)
        lines.append(f"| {name} | {cells} |")
    totals = " | ".join(f"**{sum(sc.cpu_ms_per_sale.values()):.2f}**" for sc in scenarios)
    lines.append(f"| **total** | {totals} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="sales per scenario at concurrency 16 and 64 (a fifth at 1)",
    )
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternating gateway/direct rounds per concurrency"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the sales service with py-spy (pip install py-spy) during one round",
    )
    add_baseline_argument(parser)
    args = parser.parse_args(argv)
    trees = trees_for(args.baseline)
    with ExitStack() as stacks:
        targets = []
        for label, tree in trees.items():
            bench = stacks.enter_context(bench_stack(tree=tree))
            products = seed_products(bench.database_url, args.products, random.Random(42))
            targets.append(
                Target(
                    label,
                    tree,
                    bench,
                    create_seller(bench.stack),
                    products,
                    Checkout(products, seed=7),
                    whole_stack_meter(bench),
                )
            )
        with tempfile.TemporaryDirectory() as scratch:
            profile = Path(scratch) / "sales.pyspy" if args.profile else None
            scenarios, profile_lines = asyncio.run(
                measure(targets, args.requests, args.rounds, profile)
            )
        verdicts = {}
        for target in targets:
            sales = sum(
                sc.result.requests + WARMUP * args.rounds
                for sc in scenarios
                if sc.stack == target.label
            )
            verdicts[target.label] = verify(
                target.bench.database_url, target.seller, target.products, target.checkout, sales
            )
            print(f"{target.label}: {verdicts[target.label]}", flush=True)
        text = report(scenarios, verdicts, args, profile_lines, trees)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else ""
    marker = "\n## Analysis"
    analysis = existing[existing.index(marker) :] if marker in existing else ""
    args.output.write_text(text + analysis)
    print(text)
    return 0 if all(verdict.startswith("OK") for verdict in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
