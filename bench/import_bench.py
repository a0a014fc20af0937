"""Bench of `stockmanager import-upstream` (issue 16): a whole upstream shop brought over.

    python -m bench.import_bench [--products 50000 --sales 200000 --lines 600000 --seed 7]

Generates an upstream StockManager SQLite file (newer schema generation; sellers, products,
sales over two years with their lines, notifications and audit entries), starts an embedded
PostgreSQL (or uses DATABASE_URL's server) with a fresh migrated database holding a root account
and a few local products, then times the command as a user runs it (a subprocess): a first
import, a second one (a no-op), and a --dry-run. It checks what a user relies on: every row
counted, stock = the ledger's sum, sales total = the file's total. Target: the first import
under 60 s on the 2-core box (issue 16). Results: bench/results/import.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tests.support.upstream_sqlite import UpstreamDb, werkzeug_hash

SELLERS = 12
PAYMENTS = ("Efectivo", "Tarjeta", "Transferencia")


def generate(path: Path, products: int, sales: int, lines: int, seed: int) -> None:
    """The upstream file."""
    rng = random.Random(seed)
    db = UpstreamDb(path, "newer")
    conn = db.conn
    hashed = werkzeug_hash("seller-password")
    conn.executemany(
        "INSERT INTO users (id, username, password, email, role, status, application, created_at)"
        " VALUES (?, ?, ?, ?, ?, 1, 'accepted', '2024-01-01 00:00:00')",
        [
            (i, f"seller{i}", hashed, f"seller{i}@shop.example", "admin" if i == 1 else "vendedor")
            for i in range(1, SELLERS + 1)
        ],
    )
    prices = [round(rng.uniform(0.5, 5000), 2) for _ in range(products)]
    stock = [rng.randint(0, 500) for _ in range(products)]
    conn.executemany(
        "INSERT INTO items (id, barrs_code, description, name, quantity, min_quantity, price,"
        " status, created_at, updated_at) VALUES (?, ?, '', ?, ?, 5, ?, ?, ?, ?)",
        [
            (
                i + 1,
                f"UP{i + 1:010d}",
                f"Producto {i + 1}",
                stock[i],
                prices[i],
                0 if i % 50 == 0 else 1,
                "2024-01-01 09:00:00",
                "2024-06-01 09:00:00",
            )
            for i in range(products)
        ],
    )
    start = datetime(2024, 12, 1, 8, 0, 0)
    span = 730 * 24 * 3600
    sale_rows = []
    line_rows = []
    per_sale, extra = divmod(lines, sales)
    for sid in range(1, sales + 1):
        when = start + timedelta(seconds=rng.randrange(span))
        vendor = rng.randint(1, SELLERS)
        count = per_sale + (1 if sid <= extra else 0)
        items = rng.sample(range(1, products + 1), count)
        sale_rows.append(
            (sid, items[0], when.strftime("%Y-%m-%d %H:%M:%S"), vendor, rng.choice(PAYMENTS))
        )
        for item in items:
            qty = rng.randint(1, 4)
            line_rows.append((sid, item, qty, prices[item - 1], vendor))
    conn.executemany(
        "INSERT INTO sells (id, item_id, date, vendor_id, payment_method) VALUES (?, ?, ?, ?, ?)",
        sale_rows,
    )
    conn.executemany(
        "INSERT INTO details (sell_id, item_id, quantity, price, vendor_id) VALUES (?,?,?,?,?)",
        line_rows,
    )
    conn.executemany(
        "INSERT INTO audit_log (user_id, action, entity_type, entity_id, description,"
        " ip_address, timestamp, status) VALUES (?, 'create', 'sale', ?, 'Venta', '10.0.0.1', ?,"
        " 'success')",
        [(row[3], row[0], row[2].replace(" ", "T") + ".000001") for row in sale_rows[::10]],
    )
    db.close()


def figures(path: Path) -> dict[str, Any]:
    """What the import must reproduce, read from the file itself."""
    conn = sqlite3.connect(path)
    stock = conn.execute("SELECT sum(max(quantity, 0)) FROM items").fetchone()[0]
    lines, total = conn.execute(
        "SELECT count(*), sum(d.quantity * CAST(round(d.price * 100) AS INTEGER)) FROM details d"
        " JOIN sells s ON s.id = d.sell_id"
    ).fetchone()
    conn.close()
    return {"stock": stock, "total_cents": total, "lines": lines}


def _ticks(pid: int) -> int:
    """CPU ticks of a process and of its children it has reaped (utime stime cutime cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds the PostgreSQL server has used: the postmaster with every backend it reaped,
    plus the backends still running. Independent of how busy the machine is, unlike wall time."""
    if postmaster is None:
        return 0.0
    ticks = _ticks(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(
    path: Path, database_url: str, *args: str, postmaster: int | None = None
) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "DATABASE_URL": database_url}
    cpu_before = client_cpu(), server_cpu(postmaster)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stockmanager", "import-upstream", str(path), "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["cpu"] = {
        "command": round(client_cpu() - cpu_before[0], 1),
        "postgres": round(server_cpu(postmaster) - cpu_before[1], 1),
    }
    return elapsed, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--sales", type=int, default=200_000)
    parser.add_argument("--lines", type=int, default=600_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--file", type=Path, help="keep the generated upstream file here (reused if present)"
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="import-bench-")))
        path = args.file or work / "upstream.db"
        t0 = time.perf_counter()
        if not path.exists():
            generate(path, args.products, args.sales, args.lines, args.seed)
        expected = figures(path)
        print(
            f"generated {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s;"
            f" load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        server_url = os.environ.get("DATABASE_URL")
        postmaster = None  # known (CPU measured) only for our own embedded server
        if not server_url:
            from stockmanager.embedded import EmbeddedPostgres

            server = EmbeddedPostgres(work / "postgres")
            server_url = server.start()
            stack.callback(server.stop)
            postmaster = server.pid
        from stockmanager.cli import bootstrap_root, migrate
        from tests.support.isolated import fresh_database

        database_url = fresh_database(server_url, "stockmanager_import_bench")
        migrate(database_url)
        os.environ["DATABASE_URL"] = database_url
        bootstrap_root("bench-root-password")

        print(f"database ready in {time.perf_counter() - t0:.1f} s", flush=True)
        first, report = run_import(path, database_url, postmaster=postmaster)
        print(f"first import {first:.1f} s: {report['seconds']:.1f} s inside", flush=True)
        print("phases (s): " + json.dumps(report["phases"]), flush=True)
        print("CPU seconds: " + json.dumps(report["cpu"]), flush=True)
        second, again = run_import(path, database_url, postmaster=postmaster)
        dry, dry_report = run_import(path, database_url, "--dry-run", postmaster=postmaster)
        with psycopg.connect(database_url) as conn:
            stock, ledger = conn.execute(
                "SELECT (SELECT sum(quantity) FROM products.items),"
                " (SELECT sum(delta) FROM products.stock_movements)"
            ).fetchone() or (0, 0)
            row = conn.execute("SELECT sum(quantity * unit_price) FROM sales.sale_lines").fetchone()
            total = row[0] if row else 0
        counts = report["counts"]
        assert counts["products"]["imported"] == args.products, counts
        assert counts["sales"]["imported"] == args.sales, counts
        assert counts["sale_lines"]["imported"] == expected["lines"], counts
        assert all(c["imported"] == 0 for c in again["counts"].values()), again["counts"]
        assert stock == ledger == expected["stock"], (stock, ledger, expected)
        assert int(total * 100) == expected["total_cents"], (total, expected)
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} cores, load average now {load}")
        print(
            f"| {args.products:,} products, {args.sales:,} sales, {expected['lines']:,} lines"
            f" | first import {first:.1f} s (inside: {report['seconds']:.1f} s)"
            f" | second run (no-op) {second:.1f} s | --dry-run {dry:.1f} s |"
        )
        for name, run in (("first", report), ("second", again), ("dry run", dry_report)):
            cpu = run["cpu"]
            print(
                f"CPU of the {name} import: command {cpu['command']} s,"
                f" PostgreSQL {cpu['postgres']} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
