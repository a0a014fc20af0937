"""Outbox relay: CPU per event published, the working tree's relay against another tree's.

    python -m bench.relay_bench [--baseline REV] [--events 3000 --rate 200 --rounds 3]

Embedded PostgreSQL and Redis; an outbox table of its own (`relaybench` schema). Per round and
per tree, a child process runs that tree's `OutboxRelay` (PYTHONPATH = the tree) with a task
that pokes it every 5 ms, as committing checkouts do; this process inserts one `sale.created`
outbox row per transaction at a fixed rate (the same rows for every tree), waits until the stream
holds them all, and reports the relay process's CPU and PostgreSQL's (all backends, so the
inserts are in it too: the same for every tree) per event.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from redis import Redis
from sqlalchemy import MetaData

from bench.common import _children, cpu_seconds, machine
from bench.consumers_bench import tree_of, workload
from stockmanager.embedded import EmbeddedPostgres, EmbeddedRedis
from stockmanager.events.outbox import ROWS_PARAM, insert_sql, outbox_table, rows_json
from stockmanager.migration_ddl import event_tables_ddl

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "relaybench"

CHILD = """
import asyncio, sys
from redis.asyncio import Redis
from sqlalchemy import MetaData
from stockmanager.db import Database
from stockmanager.events.outbox import outbox_table
from stockmanager.events.relay import OutboxRelay

async def main(database_url, redis_url, stream):
    db = Database(database_url)
    redis = Redis.from_url(redis_url)
    relay = OutboxRelay(db, redis, outbox_table(MetaData(schema="relaybench")), stream=stream,
                        maxlen=1_000_000)
    relay.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    done = loop.run_in_executor(None, sys.stdin.readline)
    while not done.done():
        relay.poke()
        await asyncio.sleep(0.005)
    await relay.stop()

asyncio.run(main(*sys.argv[1:4]))
"""


def one_round(
    tree: Path, database_url: str, redis_url: str, postgres_pid: int, args: argparse.Namespace
) -> dict[str, float]:
    stream = f"relaybench:{time.monotonic_ns()}"
    statement = insert_sql(outbox_table(MetaData(schema=SCHEMA)), "psycopg")
    events = workload(args.events, 0)
    child = subprocess.Popen(
        [sys.executable, "-P", "-c", CHILD, database_url, redis_url, stream],
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    redis = Redis.from_url(redis_url)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        with psycopg.connect(database_url, autocommit=True) as conn:
            before = (cpu_seconds(child.pid), _postgres(postgres_pid))
            start = time.monotonic()
            for n, event in enumerate(events):
                pause = start + n / args.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                conn.execute(statement, {ROWS_PARAM: rows_json([event])})
            deadline = time.monotonic() + 120
            while redis.xlen(stream) < len(events):
                if time.monotonic() > deadline:
                    raise RuntimeError("the relay did not publish every row in 120 s")
                time.sleep(0.02)
            after = (cpu_seconds(child.pid), _postgres(postgres_pid))
        child.stdin.write("stop\n")
        child.stdin.flush()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        redis.close()
    return {
        "relay": (after[0] - before[0]) * 1000 / len(events),
        "postgres": (after[1] - before[1]) * 1000 / len(events),
    }


def _postgres(pid: int) -> float:
    return cpu_seconds(pid, reaped_children=True) + sum(cpu_seconds(c) for c in _children(pid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="git revision to run interleaved with the working tree")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sm-relay-")))
        postgres = EmbeddedPostgres(work / "postgres")
        database_url = postgres.start()
        cleanup.callback(postgres.stop)
        redis_server = EmbeddedRedis(work / "redis")
        redis_url = redis_server.start()
        cleanup.callback(redis_server.stop)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
            for statement in event_tables_ddl(SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
        trees = {"working tree": ROOT}
        if args.baseline:
            trees = {args.baseline: tree_of(args.baseline, work), "working tree": ROOT}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for number in range(args.rounds):
            order = list(trees.items())
            if number % 2:
                order.reverse()
            for name, tree in order:
                assert postgres.pid is not None
                found = one_round(tree, database_url, redis_url, postgres.pid, args)
                results[name].append(found)
                print(
                    f"round {number + 1} {name}: "
                    + " ".join(f"{k}={v:.3f}" for k, v in found.items()),
                    flush=True,
                )
    print(f"Command: `python -m bench.relay_bench {' '.join(argv or sys.argv[1:])}`")
    print(f"Machine: {machine()}\n")
    print("| tree | relay ms/event (median) | postgres ms/event (median) |")
    print("|---|---:|---:|")
    for name, rounds in results.items():
        relay = statistics.median(r["relay"] for r in rounds)
        pg = statistics.median(r["postgres"] for r in rounds)
        print(f"| {name} | {relay:.3f} | {pg:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
