"""Event consumers' CPU per event: the audit, notifications and metrics services fed sale events.

    python -m bench.consumers_bench [--baseline REV] [--events 3000 --rate 200 --rounds 3]

Starts embedded PostgreSQL and Redis in a temporary directory (or uses DATABASE_URL /
REDIS_URL), runs the migrations, then per round and per tree (the working tree, and with
`--baseline REV` that commit, extracted with `git archive` and run on this venv) starts the audit,
notifications and metrics services as real processes (`stockmanager serve`) on a stream of their
own, waits until they are ready, and feeds them `sale.created` events (3 lines each, the shape the
sales service writes; `--stock-low-every N` adds a `product.stock_low` after every N-th sale) at
a fixed rate, the way the sales relay publishes them under a checkout load. When every group has
read and acknowledged everything, it reads the CPU time each process and PostgreSQL (postmaster
and every backend) used in between, and checks the effects: one audit record and one
notification per sale, nothing pending, nothing dead-lettered. Trees alternate within a round
and their order alternates between rounds (the machine is shared: compare ratios of one run).

The fixed rate matters: batch sizes, and so the cost per event, depend on how fast events
arrive. 200/s is the checkout rate at concurrency 16 today (bench/results/sales.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from redis.asyncio import Redis

from bench.common import cpu_seconds, machine
from stockmanager.contracts.events import SaleCreated, SaleLine, StockLow
from stockmanager.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity
from stockmanager.supervisor import ProcessSpec, Supervisor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "consumers.md"
SERVICES = ("audit", "notifications", "metrics")
# What each group must have applied per event fed (sale.created; stock_low is not audited).
GROUPS = ("audit", "notifications", "metrics")


@dataclass
class Round:
    tree: str
    events: int
    sales: int
    seconds: float
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per event fed

    @property
    def total(self) -> float:
        return sum(self.cpu_ms.values())


def sale_event(n: int, vendor: Identity) -> Event:
    lines = tuple(
        SaleLine(
            item_id=1000 + (n * 3 + k) % 500,
            name=f"Bench product {(n * 3 + k) % 500}",
            quantity=1 + k,
            unit_price=12.5 + k,
            subtotal=(12.5 + k) * (1 + k),
        )
        for k in range(3)
    )
    data = SaleCreated(
        sale_id=n + 1,
        vendor_id=vendor.user_id or 0,
        vendor_username=vendor.username or "",
        payment_method="efectivo",
        total=sum(line.subtotal for line in lines),
        items=lines,
    )
    return new_event(
        EventType.SALE_CREATED,
        identity=vendor,
        entity_type="sale",
        entity_id=n + 1,
        data=data,
        after=data,
    )


def stock_low_event(n: int, vendor: Identity) -> Event:
    return new_event(
        EventType.STOCK_LOW,
        identity=vendor,
        entity_type="product",
        entity_id=1000 + n % 500,
        data=StockLow(
            item_id=1000 + n % 500,
            name=f"Bench product {n % 500}",
            quantity=3,
            min_quantity=5,
            notify_user_id=vendor.user_id,
        ),
    )


def workload(sales: int, stock_low_every: int) -> list[Event]:
    vendor = Identity(
        user_id=2,
        username="bench-seller",
        role="vendedor",
        request_id="bench",
        ip="127.0.0.1",
        issued_at=time.time(),
    )
    events: list[Event] = []
    for n in range(sales):
        events.append(sale_event(n, vendor))
        if stock_low_every and (n + 1) % stock_low_every == 0:
            events.append(stock_low_event(n, vendor))
    return events


def tree_of(rev: str, workdir: Path) -> Path:
    """REV's files (git archive), to run on this venv with PYTHONPATH."""
    target = workdir / f"tree-{rev}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def specs(tree: Path, env: dict[str, str]) -> list[ProcessSpec]:
    found = []
    for service in SERVICES:
        port = free_port()
        port_args = ("--port", str(port))
        found.append(
            ProcessSpec(
                name=service,
                # -P: the tree on PYTHONPATH wins over the current directory.
                argv=[sys.executable, "-P", "-m", "stockmanager", "serve", service, *port_args],
                env={**env, "PYTHONPATH": str(tree)},
                ready_url=f"http://127.0.0.1:{port}/readyz",
            )
        )
    return found


async def feed(redis: Redis, stream: str, events: list[Event], rate: float) -> None:
    """XADD the events at `rate` per second, in 10 ms ticks (a relay's pipelined batches)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while sent < len(events):
        due = min(len(events), int((loop.time() - start) * rate) + 1)
        if due > sent:
            async with redis.pipeline(transaction=False) as pipe:
                for event in events[sent:due]:
                    pipe.xadd(stream, {"event": event.to_json(), "type": event.type})
                await pipe.execute()
            sent = due
        await asyncio.sleep(0.01)


async def groups_ready(redis: Redis, stream: str) -> bool:
    """Every consumer has created its group (start_id 0: nothing fed later is missed)."""
    return bool(await redis.exists(stream)) and len(await redis.xinfo_groups(stream)) == len(GROUPS)


async def drained(redis: Redis, stream: str, within: float = 120.0) -> None:
    """Every group has been delivered the stream's last entry and acknowledged everything."""
    last = (await redis.xinfo_stream(stream))["last-generated-id"]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
        if all(
            name in groups
            and groups[name]["pending"] == 0
            and groups[name]["last-delivered-id"] == last
            for name in GROUPS
        ):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"consumers did not drain {stream} in {within} s")


def check(database_url: str, events: list[Event]) -> None:
    sales = [e.id for e in events if e.type == EventType.SALE_CREATED]
    with psycopg.connect(database_url, autocommit=True) as conn:
        audited = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM audit.audit_log"
            " WHERE event_id = ANY(%s::uuid[])",
            (sales,),
        ).fetchone()
        processed = conn.execute(
            "SELECT count(*) FROM notifications.processed_events WHERE event_id = ANY(%s::uuid[])",
            ([e.id for e in events],),
        ).fetchone()
    assert audited == (len(sales), len(sales)), f"audit records {audited}, sales {len(sales)}"
    assert processed is not None and processed[0] == len(events), f"notifications {processed}"


def notifications_of(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM notifications.notifications").fetchone()
    return int(row[0]) if row else 0


async def one_round(
    tree_name: str,
    tree: Path,
    env: dict[str, str],
    postgres_pid: int,
    events: list[Event],
    args: argparse.Namespace,
    log: Path,
) -> Round:
    stream = f"bench:events:{tree_name}:{time.monotonic_ns()}"
    env = {**env, "STOCKMANAGER_EVENT_STREAM": stream}
    redis = Redis.from_url(env["REDIS_URL"])
    with log.open("a") as out:
        supervisor = Supervisor(specs(tree, env), out=out)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=90)
            await groups_ready(redis, stream)
            await asyncio.sleep(1.0)  # startup settles (imports done, pools open)
            pids = {name: supervisor.pid(name) for name in SERVICES}
            notified_before = notifications_of(env["DATABASE_URL"])

            def sample() -> dict[str, float]:
                found = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
                found["postgres"] = cpu_seconds(postgres_pid, reaped_children=True) + sum(
                    cpu_seconds(child) for child in _children(postgres_pid)
                )
                return found

            before = sample()
            started = time.monotonic()
            spies = profilers(args, tree_name, pids, len(events) / args.rate)
            await feed(redis, stream, events, args.rate)
            await drained(redis, stream)
            elapsed = time.monotonic() - started
            after = sample()
            for spy in spies:
                spy.wait()
        finally:
            supervisor.stop()
            await redis.aclose()
    check(env["DATABASE_URL"], events)
    sales = sum(1 for e in events if e.type == EventType.SALE_CREATED)
    notified = notifications_of(env["DATABASE_URL"]) - notified_before
    assert notified >= sales, f"{notified} notifications for {sales} sales"
    per_event = {name: (after[name] - before[name]) * 1000 / len(events) for name in before}
    return Round(tree_name, len(events), sales, elapsed, per_event)


def profilers(
    args: argparse.Namespace, tree_name: str, pids: dict[str, int | None], seconds: float
) -> list[subprocess.Popen[bytes]]:
    """With --py-spy DIR (py-spy on PATH): sample each service while events are fed."""
    if args.py_spy is None or tree_name != "working tree":
        return []
    args.py_spy.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                *("py-spy", "record", "-p", str(pid), "-d", str(max(1, int(seconds)))),
                *(
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "--nonblocking",
                    "-o",
                    str(args.py_spy / f"{name}.raw"),
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
        if pid
    ]


def _children(pid: int) -> list[int]:
    from bench.common import _children as children

    return children(pid)


def report(rounds: list[Round], args: argparse.Namespace, baseline: str | None) -> list[str]:
    names = [*SERVICES, "postgres"]
    trees = list(dict.fromkeys(r.tree for r in rounds))
    lines = [
        "| round | tree | events | s | " + " | ".join(names) + " | total |",
        "|---:|---|---:|---:|" + "---:|" * (len(names) + 1),
    ]
    for index, r in enumerate(rounds):
        cells = " | ".join(f"{r.cpu_ms[n]:.3f}" for n in names)
        lines.append(
            f"| {index // len(trees) + 1} | {r.tree} | {r.events} | {r.seconds:.1f} | "
            f"{cells} | **{r.total:.3f}** |"
        )
    lines += ["", "Median CPU ms per event:", ""]
    lines.append("| tree | " + " | ".join(names) + " | total |")
    lines.append("|---|" + "---:|" * (len(names) + 1))
    medians: dict[str, dict[str, float]] = {}
    for tree in trees:
        mine = [r for r in rounds if r.tree == tree]
        medians[tree] = {n: statistics.median(r.cpu_ms[n] for r in mine) for n in names}
        medians[tree]["total"] = statistics.median(r.total for r in mine)
        cells = " | ".join(f"{medians[tree][n]:.3f}" for n in [*names, "total"])
        lines.append(f"| {tree} | {cells} |")
    if baseline is not None and len(trees) == 2:
        lines += ["", f"Ratio working tree / {baseline} (median of the per-round ratios):", ""]
        for name in [*names, "total"]:
            ratios = []
            for i in range(0, len(rounds), 2):
                pair = {r.tree: r for r in rounds[i : i + 2]}
                base, work = pair[baseline], pair["working tree"]
                b = base.total if name == "total" else base.cpu_ms[name]
                w = work.total if name == "total" else work.cpu_ms[name]
                if b > 0:
                    ratios.append(w / b)
            if ratios:
                lines.append(f"- {name}: {statistics.median(ratios):.2f}× ({len(ratios)} rounds)")
    return lines


async def run(args: argparse.Namespace) -> list[str]:
    from stockmanager.cli import migrate

    with ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sm-consumers-")))
        database_url = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        postgres_pid = None
        if not database_url:
            postgres = EmbeddedPostgres(work / "postgres")
            database_url = postgres.start()
            postgres_pid = postgres.pid
            cleanup.callback(postgres.stop)
        if not redis_url:
            redis_server = EmbeddedRedis(work / "redis")
            redis_url = redis_server.start()
            cleanup.callback(redis_server.stop)
        if postgres_pid is None:
            raise SystemExit(
                "needs the embedded PostgreSQL (its CPU is measured): unset DATABASE_URL"
            )
        migrate(database_url)
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "STOCKMANAGER_INTERNAL_SECRET": "consumers-bench-" + "x" * 32,
            "STOCKMANAGER_LOG_LEVEL": "WARNING",
        }
        trees = {"working tree": ROOT}
        if args.baseline:
            trees = {args.baseline: tree_of(args.baseline, work), "working tree": ROOT}
        for extra in args.tree:  # NAME=PATH: another checkout (e.g. a variant under test)
            name, _, path = extra.partition("=")
            trees[name] = Path(path)
        rounds: list[Round] = []
        for number in range(args.rounds):
            order = list(trees.items())
            if number % 2:
                order.reverse()
            for name, tree in order:
                events = workload(args.events, args.stock_low_every)
                result = await one_round(
                    name, tree, env, postgres_pid, events, args, work / "services.log"
                )
                print(
                    f"round {number + 1} {name}: {result.total:.3f} ms/event "
                    + " ".join(f"{k}={v:.3f}" for k, v in result.cpu_ms.items()),
                    flush=True,
                )
                rounds.append(result)
        # Pairs in feeding order, baseline first, for the ratio table.
        if args.baseline:
            rounds = [
                r
                for i in range(0, len(rounds), 2)
                for r in sorted(rounds[i : i + 2], key=lambda r: r.tree != args.baseline)
            ]
        return report(rounds, args, args.baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="git revision to run interleaved with the working tree")
    parser.add_argument("--events", type=int, default=3000, help="sales per round")
    parser.add_argument("--rate", type=float, default=200.0, help="events fed per second")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--tree", action="append", default=[], help="NAME=PATH: one more tree to run (repeatable)"
    )
    parser.add_argument("--stock-low-every", type=int, default=0)
    parser.add_argument("--output", type=Path, help="write the tables here (markdown)")
    parser.add_argument("--py-spy", type=Path, help="write py-spy raw profiles here")
    args = parser.parse_args(argv)
    lines = asyncio.run(run(args))
    header = [
        f"Command: `python -m bench.consumers_bench {' '.join(argv or sys.argv[1:])}`",
        f"Machine: {machine()}",
        "",
    ]
    print("\n".join(header + lines))
    if args.output:
        args.output.write_text("\n".join(header + lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
