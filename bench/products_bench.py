"""Products list/search benchmark: 50,000 products, concurrency 16, via the gateway and direct.

    python -m bench.products_bench [--products 50000 --requests 2000 --concurrency 16]
                                   [--baseline REV]

Starts its own stack (embedded PostgreSQL and Redis in a temporary directory, unless
DATABASE_URL / REDIS_URL are set; migrations; gateway and every service as real processes),
seeds the catalogue straight into `products.items` with COPY (every constraint applies; the
API path is not what is measured here), then measures in the same run:

- `GET /api/products?search=<term>` (terms rotate: common words, rarer word pairs, accented
  words typed in capitals, whole barcodes);
- `GET /api/products_all?view_mode=low_stock&sort=price&order=desc&page=<n>` (pages rotate over
  every page of the low-stock slice);
- `GET /api/products_all?view_mode=in_stock&sort=stock&order=desc&page=<n>` (the first 100
  pages),

each through the gateway (session cookie) and straight to the products service (a signed
identity header, as the gateway sends it). With `--baseline REV` (bench/baseline.py) REV's
stack is seeded the same way and measured in the same run, rounds alternating between the
stacks, and the results file compares the two. Writes `bench/results/products.md` with the
numbers and the EXPLAIN ANALYZE plans of the queries behind them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from bench.baseline import Tree, ratio, trees_for
from bench.baseline import add_argument as add_baseline_argument
from bench.common import (
    TABLE_HEADER,
    BenchStack,
    CpuMeter,
    LoadResult,
    RequestFactory,
    bench_stack,
    cpu_seconds,
    machine,
    run_load,
    signed_headers,
)
from services.products import repository
from services.products.repository import ProductQuery

TZ = "America/Argentina/Buenos_Aires"
RESULTS = Path(__file__).parent / "results" / "products.md"
KINDS = (
    "Leche",
    "Yogur",
    "Queso",
    "Manteca",
    "Arroz",
    "Fideos",
    "Harina",
    "Azúcar",
    "Café",
    "Té",
    "Yerba",
    "Galletitas",
    "Aceite",
    "Vinagre",
    "Sal",
    "Jabón",
    "Champú",
    "Detergente",
    "Lavandina",
    "Gaseosa",
    "Agua",
    "Cerveza",
    "Vino",
    "Jugo",
    "Atún",
    "Arvejas",
    "Choclo",
    "Tomate",
    "Mermelada",
    "Dulce de leche",
    "Pan",
    "Salchichas",
    "Jamón",
    "Chocolate",
    "Caramelos",
    "Alfajor",
    "Papel",
    "Servilletas",
    "Pañales",
    "Crema",
    "Polenta",
    "Lentejas",
    "Mayonesa",
    "Ketchup",
    "Mostaza",
    "Cacao",
    "Avena",
    "Granola",
    "Miel",
    "Edulcorante",
)
BRANDS = (
    "Serenísima",
    "Sancor",
    "Arcor",
    "Molinos",
    "Marolio",
    "Ledesma",
    "Cañuelas",
    "Natura",
    "Knorr",
    "Hellmanns",
    "Terrabusi",
    "Bagley",
    "Quilmes",
    "Cunnington",
    "Baggio",
    "Taragüí",
    "Playadito",
    "Rosamonte",
    "Gallo",
    "Lucchetti",
    "Matarazzo",
    "Ala",
    "Skip",
    "Ayudín",
    "Dove",
    "Sedal",
    "Paladini",
    "Swift",
    "Granja",
    "Vital",
    "Pureza",
    "Blancaflor",
    "Nestlé",
    "Havanna",
    "Felfort",
    "Georgalos",
    "Elite",
    "Higienol",
    "Pampers",
    "Huggies",
)
SIZES = ("1L", "500ml", "2L", "1kg", "500g", "250g", "x12", "x6", "200g", "750ml", "3L", "100g")


def seed(database_url: str, count: int, rng: random.Random) -> list[str]:
    """COPY `count` products; returns a sample of their barcodes (search terms)."""
    barcodes: list[str] = []
    today = date.today()
    with psycopg.connect(database_url, autocommit=True) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY products.items (barcode, name, description, quantity, min_quantity, price,"
                " status, expiration_date) FROM STDIN"
            ) as copy,
        ):
            seen: set[str] = set()
            for _ in range(count):
                barcode = "779" + "".join(rng.choices("0123456789", k=10))
                while barcode in seen:
                    barcode = "779" + "".join(rng.choices("0123456789", k=10))
                seen.add(barcode)
                kind, brand = rng.choice(KINDS), rng.choice(BRANDS)
                name = f"{kind} {brand} {rng.choice(SIZES)}"[:25]
                min_quantity = rng.randint(3, 20)
                roll = rng.random()
                if roll < 0.70:
                    quantity = rng.randint(min_quantity + 1, 400)
                elif roll < 0.90:
                    quantity = rng.randint(1, min_quantity)  # low stock
                else:
                    quantity = 0
                expiration = today + timedelta(days=rng.randint(-30, 720))
                copy.write_row(
                    (
                        barcode,
                        name,
                        f"{kind} marca {brand}, presentación {rng.choice(SIZES)}",
                        quantity,
                        min_quantity,
                        f"{rng.uniform(50, 25000):.2f}",
                        1 if rng.random() < 0.95 else 0,
                        expiration if rng.random() < 0.6 else None,
                    )
                )
                if rng.random() < 0.01:
                    barcodes.append(barcode)
        conn.execute("VACUUM ANALYZE products.items")
        # products_0010's search side table (absent from older baselines), filled by the
        # COPY's trigger: searches are planned with its statistics, as after autovacuum.
        if conn.execute("SELECT to_regclass('products.search_terms')").fetchone() != (None,):
            conn.execute("VACUUM ANALYZE products.search_terms")
    return barcodes


def search_terms(barcodes: list[str]) -> list[str]:
    """What people type: a product kind, a brand, two words, capitals and accents, a barcode."""
    terms = [
        "leche",
        "arroz",
        "café",
        "CAFÉ",
        "yerba",
        "jabón",
        "galletitas",
        "dulce de leche",
        "serenísima",
        "SERENISIMA",
        "arcor",
        "nestlé",
        "fideos lucchetti",
        "yerba playadito",
        "aceite 1l",
        "chocolate",
        "taragüí",
        "pañales",
        "agua 2l",
        "té",
    ]
    return terms + barcodes[: len(terms)]


def sql_of(statement: Select[Any]) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled).replace("%%", "%")


def explain(database_url: str, title: str, statement: Select[Any], *, generic: bool = False) -> str:
    """EXPLAIN ANALYZE of `statement` with its bound values; `generic`: as the service runs
    lists without a search, on the generic plan of the prepared statement (repository.
    list_page), else planned with its values (searches)."""
    sql = sql_of(statement)
    with psycopg.connect(database_url, autocommit=True) as conn:
        if generic:
            compiled = statement.compile(dialect=postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]
            names: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            conn.execute("PREPARE page AS " + re.sub(r"%\((\w+)\)s", number, str(compiled)))
            conn.execute("SET plan_cache_mode = force_generic_plan")
            values = compiled.params
            run = (
                "EXECUTE page("
                + ", ".join(str(postgresql_literal(values[name])) for name in names)
                + ")"
            )
        else:
            run = sql
        for _ in range(2):  # warm the cache like the load did
            conn.execute(run).fetchall()
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + run).fetchall()
    body = "\n".join(row[0] for row in plan)
    how = "generic plan of the prepared statement" if generic else "planned with its values"
    return f"#### {title} ({how})\n\n```sql\n{sql}\n```\n\n```\n{body}\n```\n"


def postgresql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "ARRAY[" + ",".join(str(int(item)) for item in value) + "]::bigint[]"
    return str(int(value))


def requests_for(
    make_url: Callable[[str, int], str],
    base: str,
    offset: int,
    headers: Callable[[], dict[str, str]],
) -> RequestFactory:
    def build(index: int) -> tuple[str, dict[str, str]]:
        return make_url(base, index + offset), headers()

    return build


@dataclass
class Target:
    """One stack: the working tree's, or the baseline's with `--baseline REV`."""

    label: str  # "working" or "baseline"
    tree: Tree
    bench: BenchStack
    barcodes: list[str]
    cookie: dict[str, str]
    low_pages: int
    meter: CpuMeter
    signed: Callable[[], dict[str, str]]


def make_target(label: str, tree: Tree, bench: BenchStack, barcodes: list[str]) -> Target:
    stack = bench.stack
    with stack.root() as client:
        cookie = {"session": client.cookies["session"]}
        low_total = client.get(
            "/api/products_all", params={"view_mode": "low_stock", "limit": 1}
        ).json()["total"]
    identity = [signed_headers(stack)]
    signed_at = [time.monotonic()]

    def signed() -> dict[str, str]:
        if time.monotonic() - signed_at[0] > 30:  # headers are valid for 60 s
            identity[0], signed_at[0] = signed_headers(stack), time.monotonic()
        return identity[0]

    low_pages = max(1, math.ceil(low_total / 50))
    return Target(
        label, tree, bench, barcodes, cookie, low_pages, bench.cpu_meter("products"), signed
    )


@dataclass
class Measured:
    results: dict[str, list[LoadResult]]  # stack label -> results ("<scenario> via gateway"...)
    cpu_ms: dict[str, dict[str, dict[str, float]]]  # stack -> result label -> process -> ms
    new_sessions: dict[str, int]  # PostgreSQL connections opened while measuring (pool churn)


def database_sessions(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


UrlMaker = Callable[[str, int], str]


def scenarios(target: Target) -> list[tuple[str, UrlMaker]]:
    """Each scenario's URL for request number `index` (terms and pages rotate)."""
    terms = search_terms(target.barcodes)

    def search_url(base: str, index: int) -> str:
        return f"{base}/api/products?" + urlencode({"search": terms[index % len(terms)]})

    def low_url(base: str, index: int) -> str:
        page = (index * 7) % target.low_pages + 1  # every page, not in order
        query = {"view_mode": "low_stock", "sort": "price", "order": "desc", "page": page}
        return f"{base}/api/products_all?" + urlencode(query)

    def stock_url(base: str, index: int) -> str:
        page = (index * 13) % IN_STOCK_PAGES + 1
        query = {"view_mode": "in_stock", "sort": "stock", "order": "desc", "page": page}
        return f"{base}/api/products_all?" + urlencode(query)

    return [
        ("search", search_url),
        ("low_stock by price desc", low_url),
        ("in_stock by stock desc", stock_url),
    ]


SCENARIOS = ("search", "low_stock by price desc", "in_stock by stock desc")
IN_STOCK_PAGES = 100  # the first 100 pages of 50 of the in-stock list, by stock


async def measure(targets: list[Target], args: argparse.Namespace) -> Measured:
    """Per scenario, `rounds` rounds; each round loads every stack in turn (one at a time),
    through the gateway and then straight to the service, so that every stack and path sees
    the same machine (other processes' load drifts over a run)."""
    rounds = max(1, args.rounds)
    per_round = max(1, args.requests // rounds)
    results: dict[str, list[LoadResult]] = {target.label: [] for target in targets}
    cpu: dict[str, dict[str, dict[str, float]]] = {target.label: {} for target in targets}
    client_pid = os.getpid()
    sessions_before = {t.label: database_sessions(t.bench.database_url) for t in targets}
    for position, scenario in enumerate(SCENARIOS):
        runs: list[tuple[Target, str, UrlMaker, str, Callable[[], dict[str, str]] | None]] = []
        for target in targets:
            make_url = scenarios(target)[position][1]
            stack = target.bench.stack
            runs.append((target, f"{scenario} via gateway", make_url, stack.base_url, None))
            direct = stack.service_urls["products"][0]
            runs.append((target, f"{scenario} direct", make_url, direct, target.signed))
        for target, _label, make_url, base, signer in runs:  # warm caches, pools, plans
            await run_load(
                "warm-up",
                requests_for(make_url, base, 0, signer or dict),
                cookies=None if signer else target.cookie,
                concurrency=args.concurrency,
                requests=200,
                warmup=0,
            )
        parts: dict[tuple[str, str], list[LoadResult]] = {}
        spent: dict[tuple[str, str], dict[str, float]] = {}
        for number in range(rounds):
            for target, label, make_url, base, signer in runs:
                key = (target.label, label)
                before = {**target.meter.sample(), "load generator": cpu_seconds(client_pid)}
                parts.setdefault(key, []).append(
                    await run_load(
                        label,
                        requests_for(make_url, base, number * per_round, signer or dict),
                        cookies=None if signer else target.cookie,
                        concurrency=args.concurrency,
                        requests=per_round,
                        warmup=0,
                    )
                )
                after = {**target.meter.sample(), "load generator": cpu_seconds(client_pid)}
                used = spent.setdefault(key, {})
                for name in before:
                    used[name] = used.get(name, 0.0) + after[name] - before[name]
        for (stack_label, label), pieces in parts.items():
            merged = LoadResult.merge(pieces)
            results[stack_label].append(merged)
            cpu[stack_label][label] = {
                name: seconds * 1000 / merged.requests
                for name, seconds in spent[(stack_label, label)].items()
            }
    new_sessions = {
        t.label: database_sessions(t.bench.database_url) - sessions_before[t.label] for t in targets
    }
    return Measured(results, cpu, new_sessions)


CPU_NAMES = ["gateway", "products", "postgres", "redis", "load generator"]


def cpu_table(measured: Measured, stack: str) -> list[str]:
    lines = [
        "| scenario | " + " | ".join(CPU_NAMES) + " | total | capacity of 2 idle cores |",
        "|---|" + "---:|" * (len(CPU_NAMES) + 2),
    ]
    for result in measured.results[stack]:
        spent = measured.cpu_ms[stack][result.label]
        total = sum(spent.get(name, 0.0) for name in CPU_NAMES)
        cells = " | ".join(f"{spent.get(name, 0.0):.2f}" for name in CPU_NAMES)
        lines.append(f"| {result.label} | {cells} | {total:.2f} | {2000 / total:.0f} req/s |")
    return lines


def comparison(measured: Measured, trees: dict[str, Tree]) -> list[str]:
    """Working tree vs baseline, per scenario and path (same run, interleaved rounds)."""
    if "baseline" not in measured.results:
        return []
    base = {r.label: r for r in measured.results["baseline"]}
    work = {r.label: r for r in measured.results["working"]}
    lines = [
        f"### Working tree vs baseline {trees['baseline'].rev[:7]} (same run)",
        "",
        "| scenario | baseline req/s | working req/s | throughput ratio | baseline p95 ms "
        "| working p95 ms | CPU ms/request baseline → working |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, result in work.items():
        old = base[label]
        cpu_old = sum(measured.cpu_ms["baseline"][label].get(n, 0.0) for n in CPU_NAMES)
        cpu_new = sum(measured.cpu_ms["working"][label].get(n, 0.0) for n in CPU_NAMES)
        lines.append(
            f"| {label} | {old.throughput:.0f} | {result.throughput:.0f} | "
            f"{ratio(old.throughput, result.throughput)} | {old.p95:.1f} | {result.p95:.1f} | "
            f"{cpu_old:.2f} → {cpu_new:.2f} |"
        )
    met = all(
        work[label].throughput >= 1.7 * base[label].throughput and work[label].p95 <= 25
        for label in work
        if label.endswith("via gateway")
    )
    lines += [
        "",
        "Target (issue 13): through the gateway at this concurrency, ≥ 1.7× the baseline's "
        f"throughput with p95 ≤ 25 ms: **{'met' if met else 'NOT met'}**.",
        "",
    ]
    return lines


def report(
    args: argparse.Namespace,
    trees: dict[str, Tree],
    load_before: str,
    measured: Measured,
    plans: list[str],
    seconds_seeding: float,
    low_pages: int,
) -> str:
    baseline = f" --baseline {args.baseline}" if args.baseline else ""
    stacks = []
    for stack, results in measured.results.items():
        by_label = {result.label: result for result in results}
        ratios = []
        for scenario in SCENARIOS:
            via, direct = by_label[f"{scenario} via gateway"], by_label[f"{scenario} direct"]
            ratios.append(
                f"| {scenario} | {via.p50 - direct.p50:+.1f} ms | {via.p95 / direct.p95:.2f}× | "
                f"{via.throughput / direct.throughput:.2f}× |"
            )
        stacks += [
            f"## {trees[stack].label}",
            "",
            TABLE_HEADER,
            *(result.row() for result in results),
            "",
            "CPU per request (ms of CPU each process spent per request, Linux `/proc`; "
            "PostgreSQL counts the postmaster and all its backends; the last column is what "
            "two idle cores could serve: 2 × 1000 ms / total):",
            "",
            *cpu_table(measured, stack),
            "",
            f"PostgreSQL connections opened while measuring: {measured.new_sessions[stack]}.",
            "",
            "| gateway cost | added p50 | p95 ratio | throughput ratio |",
            "|---|---:|---:|---:|",
            *ratios,
            "",
        ]
    return "\n".join(
        [
            "# Products benchmark",
            "",
            f"Reproduce: `python -m bench.products_bench --concurrency {args.concurrency} "
            f"--requests {args.requests} --rounds {args.rounds}{baseline}` (`make bench "
            "NAME=products ARGS=...`). It starts its own stack (embedded PostgreSQL 18 and "
            "Redis, gateway and every service as separate processes, log level INFO) on this "
            "machine; with `--baseline REV` also REV's stack (bench/baseline.py), and the "
            "stacks' rounds alternate in the one run.",
            "",
            f"- Machine: {machine()}; the load generator, gateway, services, PostgreSQL and "
            "Redis all share it.",
            f"- Catalogue: {args.products:,} products seeded with COPY in "
            f"{seconds_seeding:.1f} s (70 % in stock, 20 % low, 10 % out of stock, 5 % "
            f"disabled); the low-stock slice has {low_pages} pages of 50.",
            f"- Load: {args.requests} requests per scenario, stack and path after 200 warm-up "
            f"requests, concurrency {args.concurrency}, keep-alive (aiohttp), in "
            f"{args.rounds} rounds alternating stacks and paths.",
            f"- Load average of the machine (1/5/15 min) before: {load_before}, after: "
            f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}. Other processes running "
            "meanwhile take their share of the two cores.",
            "- Search terms rotate over common words (`leche`, `café`), capitals and accents "
            "(`CAFÉ`, `SERENISIMA`), two-word terms and whole barcodes; low-stock pages rotate "
            f"over every page; in-stock-by-stock pages over the first {IN_STOCK_PAGES}.",
            "",
            *comparison(measured, trees),
            *stacks,
            "## Query plans relied on (working tree)",
            "",
            "Each list request is one statement: the page, as JSON text written by PostgreSQL, "
            "and its total (the statements the service builds, shown here with literal values). "
            "Lists without a search run on the generic plan of the prepared statement (made "
            "once per connection; set for the statement's transaction only, the connections "
            "otherwise keep `plan_cache_mode = force_custom_plan`): the page's ids come from an "
            "index-only walk of the sort index (partial per view mode: products_0001 low stock, "
            "products_0007 in stock and out of stock), each row from a subquery by primary key, "
            "and the total from `products.list_counts` (products_0009: per status and stock "
            "class, kept by the writers' triggers, summed in the reader's snapshot). "
            "Searches match Unicode case-folded text (`products.search_fold`: "
            "`casefold(... COLLATE pg_unicode_fast)` on PostgreSQL 18) in "
            "`products.search_terms` (products_0010: per product its folded fields joined by "
            "U+001F under one GIN trigram index, with its status and folded name and barcode, "
            "kept by triggers on `products.items`), so `LIKE '%term%'` is an index search, "
            "planned with its term; a search sorted by name without a stock filter reads only "
            "that table for its matches, the others probe `items` by id for the stock or "
            "price; a materialized CTE makes the planner find the matches once and sort them, "
            "instead of walking the name index and filtering. A search sorted by name without a "
            "stock filter is then answered from the service's search cache while "
            "`products.search_version` (products_0008) is unchanged: one statement reading the "
            "page's rows by primary key (the last plan below). "
            "`--env STOCKMANAGER_SEARCH_CACHE_SIZE=0` measures searches without that cache.",
            "",
            *plans,
        ]
    )


def query_plans(database_url: str, barcodes: list[str], low_pages: int) -> list[str]:
    low = ProductQuery(view_mode="low_stock", sort="price", order="desc")
    in_stock = ProductQuery(view_mode="in_stock", sort="stock", order="desc")
    leche = ProductQuery(search="leche", active_only=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        remembered = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM products.items WHERE status = 1"
                " AND name_folded LIKE '%leche%' ORDER BY name_folded, id LIMIT 24"
            )
        ]
    return [
        explain(
            database_url,
            "search 'leche' in active products, by name (page and total in one statement)",
            repository.page_statement(leche, limit=24, offset=0, tz=TZ),
        ),
        explain(
            database_url,
            "search a whole barcode",
            repository.page_statement(
                ProductQuery(search=barcodes[0], active_only=True), limit=24, offset=0, tz=TZ
            ),
        ),
        explain(
            database_url,
            "search 'té' (too short for trigrams: a sequential scan)",
            repository.page_statement(
                ProductQuery(search="té", active_only=True), limit=24, offset=0, tz=TZ
            ),
        ),
        explain(
            database_url,
            "low stock by price desc, first page",
            repository.page_statement(low, limit=50, offset=0, tz=TZ),
            generic=True,
        ),
        explain(
            database_url,
            f"low stock by price desc, last page ({low_pages})",
            repository.page_statement(low, limit=50, offset=(low_pages - 1) * 50, tz=TZ),
            generic=True,
        ),
        explain(
            database_url,
            f"in stock by stock desc, page {IN_STOCK_PAGES}",
            repository.page_statement(in_stock, limit=50, offset=(IN_STOCK_PAGES - 1) * 50, tz=TZ),
            generic=True,
        ),
        explain(
            database_url,
            "search 'leche' again, answered from the search cache (the page's rows by id)",
            repository.rows_by_id_statement(remembered, tz=TZ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="stack/path alternations")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every process of the stack (repeatable)",
    )
    add_baseline_argument(parser)
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    trees = trees_for(args.baseline)
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    with ExitStack() as cleanup:
        targets = []
        for label, tree in trees.items():
            bench = cleanup.enter_context(bench_stack(extra_env=extra_env or None, tree=tree))
            started = time.perf_counter()
            barcodes = seed(bench.database_url, args.products, random.Random(args.seed))
            seconds_seeding = time.perf_counter() - started
            targets.append(make_target(label, tree, bench, barcodes))
        measured = asyncio.run(measure(targets, args))
        working = targets[0]
        plans = query_plans(working.bench.database_url, working.barcodes, working.low_pages)
    text = report(args, trees, load_before, measured, plans, seconds_seeding, working.low_pages)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else ""
    marker = "\n## Analysis"
    analysis = existing[existing.index(marker) :] if marker in existing else ""
    args.output.write_text(text + "\n" + analysis)
    print("\n".join(comparison(measured, trees)))
    for stack, results in measured.results.items():
        print(trees[stack].label)
        print(TABLE_HEADER)
        for result in results:
            print(result.row())
        print("\n".join(cpu_table(measured, stack)))
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
