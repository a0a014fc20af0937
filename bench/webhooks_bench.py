"""Webhooks benchmark: 5 subscribers on `sale.created`, 2,000 sales through the gateway.

    python -m bench.webhooks_bench [--requests 2000 --concurrency 16 --rounds 2]
    python -m bench.webhooks_bench --rate 150     # open loop: 150 sales/s in both rounds
    make bench NAME=webhooks

One stack (embedded PostgreSQL and Redis, every process real, as bench/sales_bench.py). Five
receivers listen on loopback in a separate process (STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS
is set for them) and note when each delivery arrives. Rounds alternate in the same run: N sales
without any subscription, then N sales with the five subscriptions (ABAB..., so machine noise
hits both alike). Reported: checkout sales/s and latency of both, their ratio, and for the
subscribed rounds the time from each sale's 201 to its arrival at each receiver (p50/p95/p99
over sales × receivers), after checking every sale arrived at every receiver. Writes
`bench/results/webhooks.md`. Also reported: CPU per sale of every process (the receivers' own
included), from each round's start until its last delivery arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

import aiohttp
import httptools
import orjson
import uvloop

from bench.common import (
    BenchStack,
    CpuMeter,
    LoadResult,
    _drive,
    bench_stack,
    machine,
    percentile,
)
from bench.sales_bench import Checkout, create_seller, seed_products, whole_stack_meter
from stockmanager.embedded import free_port

RESULTS = Path(__file__).parent / "results" / "webhooks.md"
SUBSCRIBERS = 5
WARMUP = 100


# --- the receivers (a process of their own, so they do not share the load generator's CPU) ---


# A bare HTTP/1.1 server (httptools, the parser uvicorn uses) rather than a framework: the
# receivers stand for other companies' servers, which would not share this machine's two cores;
# the less of them there is, the more of what is measured is ours (their CPU is reported too).
OK_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class Receiver(asyncio.Protocol):
    def __init__(self, index: int, out: TextIO) -> None:
        self.index = index
        self.out = out
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        arrived = time.time()
        try:
            event = orjson.loads(b"".join(self.body))
        except orjson.JSONDecodeError:
            event = {}
        if event.get("type") == "sale.created":
            self.out.write(f"{self.index} {event['data']['sale_id']} {arrived:.6f}\n")
        assert self.transport is not None
        self.transport.write(OK_RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


def serve_receivers(ports: list[int], output: Path) -> None:
    out = output.open("a", buffering=1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for index, port in enumerate(ports):
            await loop.create_server(
                lambda index=index: Receiver(index, out),
                "127.0.0.1",
                port,
            )
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


def arrivals(output: Path) -> dict[tuple[int, int], float]:
    """(receiver, sale id) -> first arrival (a redelivery counts once: the first is what the
    receiver acts on)."""
    seen: dict[tuple[int, int], float] = {}
    for line in output.read_text().splitlines():
        index, sale_id, arrived = line.split()
        key = (int(index), int(sale_id))
        seen[key] = min(seen.get(key, float("inf")), float(arrived))
    return seen


# --- the load ----------------------------------------------------------------------------------


@dataclass
class Round:
    subscribed: bool
    load: LoadResult
    created: dict[int, float]  # sale id -> wall time of its 201
    # CPU ms per sale of each process, from the round's start until its last sale's 201 (no
    # subscriber) or until its last delivery arrived (5 subscribers): what the work cost.
    cpu_ms: dict[str, float] | None = None
    wal_bytes: float = 0.0  # PostgreSQL's WAL written per sale over the same span
    transactions: float = 0.0  # PostgreSQL's write transactions per sale, same span


async def checkout_round(
    url: str,
    cookies: dict[str, str],
    checkout: Checkout,
    *,
    requests: int,
    concurrency: int,
    subscribed: bool,
    rate: float | None = None,
) -> Round:
    created: dict[int, float] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, cookies=cookies) as session:

        async def send(_index: int) -> float:
            body = checkout.body()
            started = time.perf_counter()
            async with session.post(
                url, data=body, headers={"content-type": "application/json"}
            ) as response:
                payload = await response.read()
                done = time.time()
                if response.status != 201:
                    raise RuntimeError(f"{response.status}: {payload[:200]!r}")
            created[orjson.loads(payload)["sale_id"]] = done
            return (time.perf_counter() - started) * 1000

        began = time.perf_counter()
        if rate is None:
            latencies = await _drive(send, concurrency, requests)
        else:
            latencies = await paced(send, rate, requests)
        elapsed = time.perf_counter() - began
    label = "5 subscribers" if subscribed else "no subscriber"
    return Round(subscribed, LoadResult(label, requests, elapsed, latencies), created)


async def paced(send: Callable[[int], Awaitable[float]], rate: float, total: int) -> list[float]:
    """Open loop: request i starts at i / rate seconds whatever the earlier ones are doing (a
    shop's tills do not wait for each other), so the sale rate is the same in both rounds and
    what subscribers cost shows in the checkout's latency instead."""
    start = time.perf_counter()
    tasks = []
    for index in range(total):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(index)))
    return list(await asyncio.gather(*tasks))


def wait_for(output: Path, sales: dict[int, float], timeout: float) -> dict[tuple[int, int], float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = arrivals(output)
        missing = [
            (index, sale)
            for sale in sales
            for index in range(SUBSCRIBERS)
            if (index, sale) not in seen
        ]
        if not missing:
            return seen
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(missing)} deliveries missing, e.g. {missing[:3]}")
        time.sleep(0.2)


def run(args: argparse.Namespace) -> list[str]:
    rng = random.Random(17)
    env = {"STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
    with (
        tempfile.TemporaryDirectory(prefix="sm-webhooks-bench-") as tmp,
        bench_stack(extra_env=env) as bench,
    ):
        output = Path(tmp) / "arrivals.txt"
        output.touch()
        ports = [free_port() for _ in range(SUBSCRIBERS)]
        receivers = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.webhooks_bench",
                "--receive",
                json.dumps(ports),
                str(output),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert receivers.stdout is not None and receivers.stdout.readline().strip() == "ready"
            meter = whole_stack_meter(bench)
            meter.pids["receivers (bench)"] = (receivers.pid, False)
            return asyncio.run(_measure(bench, args, rng, ports, output, meter))
        finally:
            receivers.terminate()
            receivers.wait(10)


async def _measure(
    bench: BenchStack,
    args: argparse.Namespace,
    rng: random.Random,
    ports: list[int],
    output: Path,
    meter: CpuMeter,
) -> list[str]:
    stack = bench.stack
    products = seed_products(bench.database_url, args.products, rng)
    seller = create_seller(stack)
    checkout = Checkout(products, seed=5)
    url = f"{stack.base_url}/api/sales/bulk"
    await checkout_round(
        url,
        seller.cookies,
        checkout,
        requests=WARMUP,
        concurrency=args.concurrency,
        subscribed=False,
    )
    rounds: list[Round] = []
    delivery_ms: list[float] = []
    stages: list[tuple[float, ...]] = []
    with stack.root() as root:
        for _ in range(args.rounds):
            for subscribed in (False, True):
                ids = []
                if subscribed:
                    for port in ports:
                        made = root.post(
                            "/api/webhooks",
                            json={
                                "url": f"http://127.0.0.1:{port}/hook",
                                "events": ["sale.created"],
                            },
                        )
                        made.raise_for_status()
                        ids.append(made.json()["id"])
                before = meter.sample()
                wal_before, xid_before = wal_position(bench.database_url)
                result = await checkout_round(
                    url,
                    seller.cookies,
                    checkout,
                    requests=args.requests,
                    concurrency=args.concurrency,
                    subscribed=subscribed,
                    rate=args.rate,
                )
                rounds.append(result)
                if subscribed:
                    seen = wait_for(output, result.created, timeout=300)
                result.cpu_ms = meter.per_request_ms(before, meter.sample(), args.requests)
                wal_after, xid_after = wal_position(bench.database_url)
                result.wal_bytes = (wal_after - wal_before) / args.requests
                result.transactions = (xid_after - xid_before - 1) / args.requests
                if subscribed:
                    delivery_ms += [
                        (seen[(index, sale)] - done) * 1000
                        for sale, done in result.created.items()
                        for index in range(SUBSCRIBERS)
                    ]
                    stages.append(delivery_stages(bench.database_url, ids))
                    for webhook_id in ids:
                        root.delete(f"/api/webhooks/{webhook_id}").raise_for_status()
    return report(args, rounds, delivery_ms, stages, delivery_writes(bench.database_url))


def wal_position(database_url: str) -> tuple[int, int]:
    """Bytes of WAL PostgreSQL has written so far, and the next transaction id (each
    transaction that writes takes one; this probe too): no lag, unlike the statistics views."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT pg_current_wal_insert_lsn() - '0/0', CAST(CAST(pg_current_xact_id() AS text)"
            " AS bigint)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def delivery_writes(database_url: str) -> tuple[float, float, float]:
    """Row versions written to webhooks.deliveries per delivery over the whole run: (inserted,
    updated, of which HOT). The statistics views lag (a backend idle since its last report
    flushes within 10 s), so this waits that long first, once."""
    import psycopg

    time.sleep(11)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
            " WHERE schemaname = 'webhooks' AND relname = 'deliveries'"
        ).fetchone()
    assert row is not None and row[0]
    inserted, updated, hot = (float(v) for v in row)
    return 1.0, updated / inserted, hot / inserted


def delivery_stages(database_url: str, subscription_ids: list[int]) -> tuple[float, ...]:
    """Where the time went (ms, p50 and p99): event -> delivery row (relay + stream + consumer
    fan-out), delivery row -> first attempt (the worker's claim), attempt -> recorded."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """
            WITH d AS (
                SELECT extract(epoch FROM d.created_at
                                          - CAST(CAST(p.body AS json)->>'time' AS timestamptz))
                           * 1000 AS queued,
                       extract(epoch FROM d.delivered_at - d.created_at) * 1000 AS sent
                  FROM webhooks.deliveries d JOIN webhooks.payloads p USING (event_id)
                 WHERE d.subscription_id = ANY(%s)
            )
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY queued),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY queued),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY sent),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY sent)
              FROM d
            """,
            (subscription_ids,),
        ).fetchone()
    assert row is not None
    return tuple(float(v) for v in row)


def report(
    args: argparse.Namespace,
    rounds: list[Round],
    delivery_ms: list[float],
    stages: list[tuple[float, ...]],
    writes: tuple[float, float, float],
) -> list[str]:
    plain = LoadResult.merge([r.load for r in rounds if not r.subscribed])
    hooked = LoadResult.merge([r.load for r in rounds if r.subscribed])
    ratio = hooked.throughput / plain.throughput
    cpu = {
        subscribed: mean_cpu([r.cpu_ms or {} for r in rounds if r.subscribed is subscribed])
        for subscribed in (False, True)
    }
    wal = {
        subscribed: sum(r.wal_bytes for r in rounds if r.subscribed is subscribed)
        / max(1, sum(1 for r in rounds if r.subscribed is subscribed))
        for subscribed in (False, True)
    }
    transactions = {
        subscribed: sum(r.transactions for r in rounds if r.subscribed is subscribed)
        / max(1, sum(1 for r in rounds if r.subscribed is subscribed))
        for subscribed in (False, True)
    }
    processes = sorted(set(cpu[False]) | set(cpu[True]), key=lambda name: -cpu[True].get(name, 0))
    lines = [
        "# Webhooks benchmark",
        "",
        f"`python -m bench.webhooks_bench --requests {args.requests} "
        + (f"--rate {args.rate:g}" if args.rate else f"--concurrency {args.concurrency}")
        + f" --rounds {args.rounds}` ({machine()}; one stack, rounds interleaved "
        "A B A B: without subscriptions, then with five on `sale.created`; "
        + (
            f"open loop: a sale starts every {1000 / args.rate:g} ms whatever the others do)."
            if args.rate
            else f"closed loop: {args.concurrency} clients, each sells again once answered)."
        ),
        "",
        "Checkout (`POST /api/sales/bulk` through the gateway, 3 lines per sale):",
        "",
        "| scenario | sales | p50 ms | p95 ms | p99 ms | sales/s |",
        "|---|---:|---:|---:|---:|---:|",
        plain.row(),
        hooked.row(),
        "",
        f"Throughput with 5 subscribers / without: **{ratio:.2f}** "
        f"({(1 - ratio) * 100:+.1f} % {'slower' if ratio < 1 else 'faster'}).",
        "",
        f"Delivery latency, from the sale's 201 to its arrival at a receiver "
        f"({len(delivery_ms)} deliveries = sales × 5, every one arrived):",
        "",
        "| p50 ms | p95 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|",
        f"| {percentile(delivery_ms, 50):.0f} | {percentile(delivery_ms, 95):.0f} | "
        f"{percentile(delivery_ms, 99):.0f} | {max(delivery_ms):.0f} |",
        "",
        "Where the time goes, per subscribed round (ms; from the database's timestamps): event "
        "committed → delivery row written (outbox relay, stream, `webhooks` consumer), and "
        "delivery row → delivered (claim, POST, record):",
        "",
        "| round | queued p50 | queued p99 | sent p50 | sent p99 |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {n} | {a:.0f} | {b:.0f} | {c:.0f} | {d:.0f} |"
            for n, (a, b, c, d) in enumerate(stages, start=1)
        ),
        "",
        "CPU per sale by process (ms, from /proc; no subscriber: until the round's last 201; 5 "
        "subscribers: until the last delivery arrived, so every delivery's work is counted):",
        "",
        "| process | no subscriber | 5 subscribers | added |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {cpu[False].get(name, 0):.2f} | {cpu[True].get(name, 0):.2f} | "
            f"{cpu[True].get(name, 0) - cpu[False].get(name, 0):+.2f} |"
            for name in processes
        ),
        f"| **total** | **{sum(cpu[False].values()):.2f}** | **{sum(cpu[True].values()):.2f}** | "
        f"**{sum(cpu[True].values()) - sum(cpu[False].values()):+.2f}** |",
        "",
        "PostgreSQL's writes (not slowed down by other load on the machine, unlike CPU): WAL "
        "per sale over the same spans, and row versions written to `webhooks.deliveries` per "
        "delivery over the whole run:",
        "",
        "| WAL per sale, no subscriber | with 5 | added per delivery | rows inserted | "
        "rows updated | of which HOT |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {wal[False]:.0f} B | {wal[True]:.0f} B | "
        f"{(wal[True] - wal[False]) / SUBSCRIBERS:.0f} B | {writes[0]:.2f} | {writes[1]:.2f} | "
        f"{writes[2]:.2f} |",
        "",
        f"Write transactions per sale: {transactions[False]:.2f} without subscribers, "
        f"{transactions[True]:.2f} with 5 (+{transactions[True] - transactions[False]:.2f}).",
    ]
    return lines


def mean_cpu(samples: list[dict[str, float]]) -> dict[str, float]:
    names = {name for sample in samples for name in sample}
    return {name: sum(s.get(name, 0.0) for s in samples) / len(samples) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--rate",
        type=float,
        help="sales per second, open loop (default: closed loop at --concurrency)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--receive", nargs=2, metavar=("PORTS", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receive:
        serve_receivers(json.loads(args.receive[0]), Path(args.receive[1]))
        return 0
    lines = run(args)
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
