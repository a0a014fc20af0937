"""CSV import/export benchmark: 50,000 rows through the gateway, optionally against a baseline.

    python -m bench.csv_bench [--rows 50000 --rounds 3 --baseline REV]

Starts its own stack (bench/common.py; with `--baseline REV` also REV's, bench/baseline.py) and
measures, in rounds that alternate between the stacks (only one stack busy at a time):

- **import, creating**: `POST /api/products/import` of a `--rows` file of new products into an
  empty catalogue (the catalogue and ledger are emptied before each round);
- **export**: `GET /api/products/export` of the whole catalogue (the rows just imported);
- **import, updating**: the same file again with every stock changed and one price in ten, so
  every row updates an existing product (stock through the stock function).

Every answer is checked (counts in the body, rows in the export) and, after the last round, the
ledger of each stack must explain every product's stock. Wall time per request and CPU spent by
each process (Linux /proc) are written to `bench/results/csv.md`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg

from bench.baseline import Tree, ratio, trees_for
from bench.baseline import add_argument as add_baseline_argument
from bench.common import BenchStack, CpuMeter, bench_stack, machine
from bench.products_bench import BRANDS, KINDS, SIZES

RESULTS = Path(__file__).parent / "results" / "csv.md"
HEADER = "barcode,name,quantity,price,description,min_quantity,expiration_date"
OPERATIONS = ("import, creating", "export", "import, updating")
COMPONENTS = ("gateway", "products", "postgres")


def catalogue_file(rows: int, seed: int, *, stock_shift: int = 0) -> bytes:
    """`rows` products as upstream's spreadsheets hold them; `stock_shift` changes every stock
    (and one price in ten) for the updating import."""
    rng = random.Random(seed)
    today = date.today()
    lines = [HEADER]
    for index in range(rows):
        kind, brand = rng.choice(KINDS), rng.choice(BRANDS)
        name = f"{kind} {brand} {rng.choice(SIZES)}"[:25]
        min_quantity = rng.randint(3, 20)
        quantity = rng.randint(0, 400)
        price = rng.uniform(50, 25000)
        expiration = today + timedelta(days=rng.randint(1, 720))
        if stock_shift:
            quantity = (quantity + stock_shift) % 401
            if index % 10 == 0:
                price += 1
        description = f"{kind} marca {brand}, presentación {rng.choice(SIZES)}"
        lines.append(
            f'779{index:010d},{name},{quantity},{price:.2f},"{description}",{min_quantity},'
            f"{expiration.isoformat() if rng.random() < 0.6 else ''}"
        )
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Sample:
    seconds: float
    cpu: dict[str, float]


@dataclass
class Target:
    label: str  # "working" or "baseline"
    tree: Tree
    bench: BenchStack
    client: httpx.Client
    meter: CpuMeter
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def timed(self, operation: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        before = self.meter.sample()
        started = time.perf_counter()
        response = self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        after = self.meter.sample()
        if response.status_code != 200:
            raise RuntimeError(f"{self.label} {operation}: {response.status_code} {response.text}")
        cpu = {name: after[name] - before[name] for name in before}
        self.samples.setdefault(operation, []).append(Sample(seconds, cpu))
        return response


def empty_catalogue(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE products.stock_movements, products.items RESTART IDENTITY CASCADE")
        conn.execute("VACUUM ANALYZE products.items")


def ledger_mismatches(database_url: str) -> int:
    """Products whose stock the ledger does not explain (must be 0)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM products.items i LEFT JOIN (SELECT item_id, sum(delta) AS s"
            " FROM products.stock_movements GROUP BY item_id) m ON m.item_id = i.id"
            " WHERE i.quantity <> coalesce(m.s, 0)"
        ).fetchone()
    return int(row[0]) if row else -1


def stack_env(rows: int) -> dict[str, str]:
    # The gateway answers 504 after 30 s by default; a row-by-row baseline import on a busy
    # machine takes longer, and the time is what is measured here.
    return {"STOCKMANAGER_IMPORT_MAX_ROWS": str(rows), "STOCKMANAGER_UPSTREAM_TIMEOUT": "900"}


def one_round(target: Target, rows: int, creating: bytes, updating: bytes) -> None:
    empty_catalogue(target.bench.database_url)
    csv = {"content-type": "text/csv"}
    body = target.timed(
        "import, creating", "POST", "/api/products/import", content=creating, headers=csv
    ).json()
    assert (body["created"], body["updated"]) == (rows, 0), body
    export = target.timed("export", "GET", "/api/products/export")
    assert export.content.count(b"\n") == rows + 1, "export: wrong number of lines"
    body = target.timed(
        "import, updating", "POST", "/api/products/import", content=updating, headers=csv
    ).json()
    assert (body["created"], body["updated"]) == (0, rows), body


@dataclass
class Summary:
    seconds: float  # median
    spread: str
    cpu: dict[str, float]  # median per component


def summarize(samples: list[Sample]) -> Summary:
    seconds = [s.seconds for s in samples]
    cpu = {name: statistics.median(s.cpu.get(name, 0.0) for s in samples) for name in COMPONENTS}
    return Summary(statistics.median(seconds), f"{min(seconds):.2f}–{max(seconds):.2f}", cpu)


def report(args: argparse.Namespace, targets: list[Target], load: str, checks: list[str]) -> str:
    baseline = " --baseline " + args.baseline if args.baseline else ""
    lines = [
        "# CSV import/export benchmark",
        "",
        f"Reproduce: `python -m bench.csv_bench --rows {args.rows} --rounds {args.rounds}"
        f"{baseline}` (`make bench NAME=csv ARGS=...`).",
        "",
        f"- Machine: {machine()}; load generator, gateway, services, PostgreSQL and Redis "
        f"share it (load average 1/5/15 min before: {load}; after: "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}).",
        f"- File: {args.rows:,} products (~{args.file_bytes / 1e6:.1f} MB), all columns; the "
        "catalogue and ledger are emptied before each round; the stacks' rounds alternate.",
        "- Time: one request, client side, through the gateway. CPU: seconds each process "
        "spent during it (PostgreSQL: postmaster and all backends).",
        "",
        "| stack | operation | median s | range s | gateway CPU s | products CPU s "
        "| postgres CPU s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    summaries = {t.label: {op: summarize(t.samples[op]) for op in OPERATIONS} for t in targets}
    for target in targets:
        for operation in OPERATIONS:
            s = summaries[target.label][operation]
            cpu = " | ".join(f"{s.cpu[name]:.2f}" for name in COMPONENTS)
            lines.append(
                f"| {target.tree.label} | {operation} | {s.seconds:.2f} | {s.spread} | {cpu} |"
            )
    if "baseline" in summaries:
        lines += [
            "",
            "| operation | baseline s | working s | speed-up (baseline / working) |",
            "|---|---:|---:|---:|",
        ]
        for operation in OPERATIONS:
            base, work = summaries["baseline"][operation], summaries["working"][operation]
            lines.append(
                f"| {operation} | {base.seconds:.2f} | {work.seconds:.2f} | "
                f"{ratio(work.seconds, base.seconds)} |"
            )
    lines += ["", "Checks after the last round: " + "; ".join(checks) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    add_baseline_argument(parser)
    args = parser.parse_args(argv)
    trees = trees_for(args.baseline)
    creating = catalogue_file(args.rows, 42)
    updating = catalogue_file(args.rows, 42, stock_shift=7)
    args.file_bytes = len(creating)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    with ExitStack() as cleanup:
        targets = []
        for label, tree in trees.items():
            bench = cleanup.enter_context(bench_stack(tree=tree, extra_env=stack_env(args.rows)))
            with bench.stack.root() as root:
                cookie = root.cookies["session"]
            client = cleanup.enter_context(
                httpx.Client(
                    base_url=bench.stack.base_url, cookies={"session": cookie}, timeout=1000
                )
            )
            targets.append(Target(label, tree, bench, client, bench.cpu_meter("products")))
        for number in range(args.rounds):
            for target in targets:
                one_round(target, args.rows, creating, updating)
                last = {op: target.samples[op][-1].seconds for op in OPERATIONS}
                print(
                    f"round {number + 1} {target.tree.label}: "
                    + ", ".join(f"{op} {s:.2f} s" for op, s in last.items()),
                    flush=True,
                )
        checks = [
            f"{t.tree.label}: {ledger_mismatches(t.bench.database_url)} products whose stock "
            "the ledger does not explain"
            for t in targets
        ]
    text = report(args, targets, load, checks)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else ""
    marker = "\n## Analysis"
    args.output.write_text(
        text + (existing[existing.index(marker) :] if marker in existing else "")
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
