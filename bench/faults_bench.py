"""Fault bench: a steady checkout load through the gateway while, in turn, each part of the
system is killed (and one is frozen), under the self-healing supervisor.

    python -m bench.faults_bench [--quick] [--clients 6] [--output bench/results/faults.md]
    make bench NAME=faults [ARGS=--quick]

Starts the whole system the way `stockmanager up` does: embedded PostgreSQL and Redis in a
temporary directory, the migrations, the root account, then the gateway and every service as
real processes under `Supervisor(restart=RestartPolicy(...))`. Seeds products with ample stock
straight into `products.items`, creates one seller and logs in once.

Load: `--clients` concurrent clients, each repeating one checkout at a time: `POST
/api/sales/bulk` (3 random products, 1-3 units each) with a fresh `Idempotency-Key` per sale.
On a 503/504, a connection error or a client-side timeout the client retries the SAME key after
a short backoff (at most RETRY_BUDGET_SECONDS and RETRY_LIMIT attempts per sale; a sale given up
is counted, and it is fine for it to exist or not).

Faults, one after the other with a steady stretch before each: kill -9 of the gateway, sales,
products, audit, notifications and metrics processes (the supervisor restarts them), kill -9 of
PostgreSQL (the postmaster) and Redis (the supervisor watches both as `up` does and starts them
again on the same port and data directory), and SIGSTOP of
the sales process for FREEZE_SECONDS, then SIGCONT. For each fault: seconds until checkouts
succeed again (first 201 of a request sent after the fault), seconds until the process is ready
again, what the clients saw (statuses), the slowest request.

Fails (exit 1, the violations listed) when a client saw anything but 201 or a JSON 503/504 with
`Retry-After` (connection errors are accepted only while the gateway itself is down), a request
took longer than the gateway's upstream timeout, the supervisor gave up, or, after the load,
when an acknowledged sale is missing, doubled or has other lines than sent, stock differs from
the ledger or from the lines sold, a sale lacks its audit record or its notification, or a
consumer group is left with lag/pending messages or anything was dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psycopg
import redis

from bench.common import BenchStack, bench_stack, machine
from bench.sales_bench import STOCK, Seller, create_seller, seed_products
from stockmanager.settings import KernelSettings
from stockmanager.supervisor import RestartPolicy

RESULTS = Path(__file__).parent / "results" / "faults.md"
LINES = 3
UPSTREAM_TIMEOUT = 30.0  # the gateway's default STOCKMANAGER_UPSTREAM_TIMEOUT
HANG_MARGIN = 3.0  # a request slower than UPSTREAM_TIMEOUT + this is a hang
CLIENT_TIMEOUT = UPSTREAM_TIMEOUT + 15.0  # the client gives up on one attempt after this
RETRY_LIMIT = 200
RETRY_BUDGET_SECONDS = 90.0
BACKOFF = (0.1, 0.2, 0.3, 0.5)  # seconds before retry 1, 2, 3, 4+ of one sale
FREEZE_SECONDS = 10.0
RECOVERY_LIMIT = 60.0  # a fault not recovered from within this is a violation
CATCH_UP_LIMIT = 120.0  # consumers must have caught up this long after the load stopped
SERVICES_KILLED = ("gateway", "sales", "products", "audit", "notifications", "metrics")
POLICY = RestartPolicy(initial_backoff=0.5, max_backoff=10.0, max_restarts=5, window=60.0)
# Consumers take over a dead consumer's pending messages after this idle time: `up`'s default
# (the test stacks shorten it; the bench keeps what `up` runs with).
RECLAIM_IDLE_MS = KernelSettings.model_fields["event_reclaim_idle_ms"].default


# ---------------------------------------------------------------------------------------------
# The load


@dataclass
class Attempt:
    started: float
    ended: float
    outcome: str  # "201", "503", ..., "connection error", "client timeout"
    retry_after: bool = True
    json_error: bool = True
    sale_id: int | None = None  # from a 201
    replayed: bool = False  # a 201 with Idempotent-Replayed: true
    body: bytes = b""  # the start of an error answer


@dataclass
class Sale:
    key: str
    items: list[tuple[int, int]]  # (item_id, quantity) in request order
    attempts: int = 0
    sale_id: int | None = None
    replayed: bool = False
    given_up: bool = False


@dataclass
class Load:
    url: str
    cookies: dict[str, str]
    products: list[int]
    clients: int
    attempts: list[Attempt] = field(default_factory=list)
    sales: list[Sale] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = 0.0

    def new_sale(self, rng: random.Random) -> Sale:
        items = [(item, rng.randint(1, 3)) for item in rng.sample(self.products, LINES)]
        sale = Sale(uuid.uuid4().hex, items)
        self.sales.append(sale)
        return sale

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.clients)
        timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
        async with aiohttp.ClientSession(
            connector=connector, cookies=self.cookies, timeout=timeout
        ) as session:
            await asyncio.gather(*(self.client(session, n) for n in range(self.clients)))

    async def client(self, session: aiohttp.ClientSession, number: int) -> None:
        rng = random.Random(number)
        while not self.stop.is_set():
            sale = self.new_sale(rng)
            body = orjson.dumps(
                {
                    "items": [{"item_id": i, "quantity": q} for i, q in sale.items],
                    "payment_method": "Efectivo",
                }
            )
            headers = {"content-type": "application/json", "Idempotency-Key": sale.key}
            first = time.monotonic()
            while True:
                sale.attempts += 1
                attempt = await self.send(session, body, headers)
                self.attempts.append(attempt)
                if attempt.outcome == "201":
                    break
                retryable = attempt.outcome in ("503", "504", "connection error", "client timeout")
                if (
                    not retryable
                    or sale.attempts >= RETRY_LIMIT
                    or time.monotonic() - first > RETRY_BUDGET_SECONDS
                ):
                    sale.given_up = True
                    break
                await asyncio.sleep(BACKOFF[min(sale.attempts, len(BACKOFF)) - 1])
            if attempt.outcome == "201":
                sale.sale_id, sale.replayed = attempt.sale_id, attempt.replayed

    async def send(
        self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> Attempt:
        started = time.monotonic()
        try:
            async with session.post(self.url, data=body, headers=headers) as response:
                payload = await response.read()
                status = response.status
                retry_after = "retry-after" in response.headers
                replayed = response.headers.get("idempotent-replayed") == "true"
        except TimeoutError:
            return Attempt(started, time.monotonic(), "client timeout")
        except (aiohttp.ClientError, OSError):
            return Attempt(started, time.monotonic(), "connection error")
        ended = time.monotonic()
        if status == 201:
            sale_id = int(orjson.loads(payload)["sale_id"])
            return Attempt(started, ended, "201", sale_id=sale_id, replayed=replayed)
        json_error = False
        with contextlib.suppress(orjson.JSONDecodeError, TypeError):
            decoded = orjson.loads(payload)
            json_error = isinstance(decoded, dict) and isinstance(decoded.get("error"), str)
        return Attempt(started, ended, str(status), retry_after, json_error, body=payload[:120])


# ---------------------------------------------------------------------------------------------
# Faults


@dataclass
class Fault:
    name: str  # what the table shows
    target: str  # supervisor child name, "postgres" or "redis"
    kind: str  # "kill" or "stop"


@dataclass
class FaultResult:
    fault: Fault
    injected: float
    ended: float
    recovered_after: float | None  # first 201 sent after the fault, seconds after it
    process_back_after: float | None  # the process (or server) ready again
    statuses: Counter[str] = field(default_factory=Counter)
    max_latency: float = 0.0
    sales_ok: int = 0
    load_avg: float = 0.0
    restarts: int | None = None


class Faults:
    def __init__(self, bench: BenchStack, load: Load) -> None:
        self.bench = bench
        self.load = load
        self.stack = bench.stack
        self.supervisor = bench.stack.supervisor

    def ready_url(self, name: str) -> str:
        if name == "gateway":
            return f"{self.stack.internal_url}/readyz"
        return f"{self.stack.service_urls[name][0]}/readyz"

    async def wait_process_back(self, name: str, old_pid: int, since: float) -> float | None:
        deadline = since + RECOVERY_LIMIT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                pid = self.supervisor.pid(name)
                if pid is not None and pid != old_pid:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                        async with session.get(self.ready_url(name)) as response:
                            if response.status == 200:
                                return time.monotonic() - since
                await asyncio.sleep(0.05)
        return None

    async def wait_server_back(self, name: str, old_pid: int, since: float) -> float | None:
        """A new server process that accepts connections (PostgreSQL: a query; Redis: PING)."""
        server = self.bench.postgres if name == "postgres" else self.bench.redis
        assert server is not None
        url = self.stack.env["DATABASE_URL" if name == "postgres" else "REDIS_URL"]
        deadline = since + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            pid = server.pid
            if pid is not None and pid != old_pid and await asyncio.to_thread(_answers, name, url):
                return time.monotonic() - since
            await asyncio.sleep(0.05)
        return None

    async def wait_checkout_ok(self, since: float) -> float | None:
        deadline = since + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            ok = [a.ended for a in self.load.attempts if a.outcome == "201" and a.started >= since]
            if ok:
                return min(ok) - since
            await asyncio.sleep(0.05)
        return None

    async def inject(self, fault: Fault) -> FaultResult:
        load_avg = os.getloadavg()[0]
        if fault.target in ("postgres", "redis"):
            server = self.bench.postgres if fault.target == "postgres" else self.bench.redis
            assert server is not None and server.pid is not None
            old_pid = server.pid
            injected = time.monotonic()
            # The server's main process (the postmaster; its backends are left to die or to
            # the watcher). The supervisor watches the server and starts it again, as in `up`.
            os.kill(old_pid, signal.SIGKILL)
            back, recovered = await asyncio.gather(
                self.wait_server_back(fault.target, old_pid, injected),
                self.wait_checkout_ok(injected),
            )
            return FaultResult(fault, injected, 0.0, recovered, back, load_avg=load_avg)
        pid = self.supervisor.pid(fault.target)
        assert pid is not None, f"{fault.target} is not running"
        injected = time.monotonic()
        if fault.kind == "kill":
            os.kill(pid, signal.SIGKILL)
            back, recovered = await asyncio.gather(
                self.wait_process_back(fault.target, pid, injected),
                self.wait_checkout_ok(injected),
            )
        else:
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(FREEZE_SECONDS)
            os.kill(pid, signal.SIGCONT)
            back = time.monotonic() - injected
            recovered = await self.wait_checkout_ok(injected)
        return FaultResult(fault, injected, 0.0, recovered, back, load_avg=load_avg)


def _answers(name: str, url: str) -> bool:
    try:
        if name == "postgres":
            with psycopg.connect(url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (psycopg.Error, redis.RedisError, OSError):
        return False


def summarise(result: FaultResult, attempts: list[Attempt], restarts: dict[str, int]) -> None:
    during = [a for a in attempts if result.injected <= a.started < result.ended]
    # An attempt in flight when the fault hit belongs to it too.
    during += [a for a in attempts if a.started < result.injected <= a.ended]
    result.statuses = Counter(a.outcome for a in during)
    result.max_latency = max((a.ended - a.started for a in during), default=0.0)
    result.sales_ok = result.statuses.get("201", 0)
    result.restarts = restarts.get(result.fault.target)


# ---------------------------------------------------------------------------------------------
# After the load


def check_clients(
    load: Load, gateway_down: list[tuple[float, float]], load_started: float
) -> list[str]:
    problems: list[str] = []
    for attempt in load.attempts:
        latency = attempt.ended - attempt.started
        at = (
            f"(attempt at +{attempt.started - load_started:.1f} s, {latency:.1f} s"
            + (f", body {attempt.body.decode('utf-8', 'replace')}" if attempt.body else "")
            + ")"
        )
        if latency > UPSTREAM_TIMEOUT + HANG_MARGIN:
            problems.append(f"a request hung past the upstream timeout {at}: {attempt.outcome}")
        if attempt.outcome == "201":
            continue
        if attempt.outcome in ("503", "504"):
            if not attempt.json_error:
                problems.append(f"{attempt.outcome} without a JSON error body {at}")
            if not attempt.retry_after:
                problems.append(f"{attempt.outcome} without Retry-After {at}")
        elif attempt.outcome == "connection error":
            if not any(s - 0.5 <= attempt.ended <= e + 0.5 for s, e in gateway_down):
                problems.append(f"connection error while the gateway was up {at}")
        elif attempt.outcome != "client timeout":  # a timeout is reported as a hang above
            problems.append(f"unacceptable status {attempt.outcome} {at}")
    return _dedupe(problems)


def _dedupe(problems: list[str], keep: int = 3) -> list[str]:
    """At most `keep` examples of each kind of problem, with a count of the rest."""
    kinds: dict[str, list[str]] = {}
    for problem in problems:
        kinds.setdefault(problem.split(" (")[0], []).append(problem)
    out = []
    for kind, examples in kinds.items():
        out += examples[:keep]
        if len(examples) > keep:
            out.append(f"... and {len(examples) - keep} more: {kind}")
    return out


def consumer_state(redis_url: str, stream: str) -> tuple[dict[str, tuple[int, int]], int]:
    """Per group (lag, pending), and the dead-letter stream's length."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        groups = {}
        for group in client.xinfo_groups(stream):
            lag = group.get("lag")
            if lag is None:
                last = group["last-delivered-id"]
                lag = len(client.xrange(stream, min=f"({last}", max="+", count=100_000) or ())
            groups[group["name"]] = (int(lag), int(group["pending"]))
        return groups, int(client.xlen(f"{stream}:dead"))
    finally:
        client.close()


@dataclass
class Verification:
    problems: list[str]
    lines: list[str]
    catch_up_seconds: float | None


def verify(bench: BenchStack, load: Load, seller: Seller) -> Verification:
    problems: list[str] = []
    lines: list[str] = []
    acked = [s for s in load.sales if s.sale_id is not None]
    stream = "stockmanager:events"
    redis_url = bench.stack.env["REDIS_URL"]
    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        sales = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT s.id, array_agg(array[l.item_id, l.quantity::bigint] ORDER BY l.id)"
                " FROM sales.sales s JOIN sales.sale_lines l ON l.sale_id = s.id"
                " WHERE s.vendor_id = %s GROUP BY s.id",
                (seller.user_id,),
            )
        }
        bare = conn.execute(
            "SELECT count(*) FROM sales.sales s WHERE vendor_id = %s AND NOT EXISTS"
            " (SELECT 1 FROM sales.sale_lines l WHERE l.sale_id = s.id)",
            (seller.user_id,),
        ).fetchone()
        if bare and bare[0]:
            problems.append(f"{bare[0]} sales without lines")
        keys = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT key, sale_id FROM sales.idempotency_keys WHERE user_id = %s",
                (seller.user_id,),
            )
        }
        # 1. Every acknowledged sale exists exactly once, with the lines sent.
        by_sale = Counter(s.sale_id for s in acked)
        doubled = [sale_id for sale_id, n in by_sale.items() if n > 1]
        if doubled:
            problems.append(f"{len(doubled)} sale ids acknowledged for two keys: {doubled[:5]}")
        missing = wrong = 0
        for sale in acked:
            stored = sales.get(sale.sale_id) if sale.sale_id is not None else None
            if stored is None or keys.get(sale.key) != sale.sale_id:
                missing += 1
            elif [tuple(line) for line in stored] != [tuple(item) for item in sale.items]:
                wrong += 1
        if missing:
            problems.append(f"{missing} acknowledged sales missing (or not under their key)")
        if wrong:
            problems.append(f"{wrong} acknowledged sales with other lines than sent")
        sent_keys = {s.key for s in load.sales}
        keyed = {sale_id for sale_id in keys.values() if sale_id is not None}
        unkeyed = set(sales) - keyed
        if unkeyed:
            problems.append(f"{len(unkeyed)} sales recorded under no key (doubled sales)")
        foreign = set(keys) - sent_keys
        if foreign:
            problems.append(f"{len(foreign)} idempotency keys the clients never sent")
        if len(keyed) != sum(1 for v in keys.values() if v is not None):
            problems.append("two keys point at one sale")
        given_up = [s for s in load.sales if s.given_up]
        given_up_recorded = sum(1 for s in given_up if keys.get(s.key) is not None)
        lines.append(
            f"- Sales: {len(acked)} acknowledged ({sum(s.replayed for s in acked)} of them as "
            f"idempotent replays), {len(sales)} recorded for the seller; {len(given_up)} given "
            f"up by their client ({given_up_recorded} of those recorded anyway, which is fine: "
            "the client never heard back; a retry with its key would replay it)."
        )
        # 2. Stock = the ledger = the lines sold.
        mismatched = conn.execute(
            "WITH sold AS (SELECT l.item_id, sum(l.quantity) AS units FROM sales.sale_lines l"
            "   JOIN sales.sales s ON s.id = l.sale_id WHERE s.vendor_id = %(v)s"
            "   GROUP BY l.item_id),"
            " ledger AS (SELECT item_id, -sum(delta) AS units FROM products.stock_movements"
            "   WHERE item_id = ANY(%(p)s) GROUP BY item_id)"
            " SELECT i.id, %(stock)s - i.quantity, coalesce(g.units, 0), coalesce(d.units, 0)"
            " FROM products.items i LEFT JOIN ledger g ON g.item_id = i.id"
            " LEFT JOIN sold d ON d.item_id = i.id WHERE i.id = ANY(%(p)s)"
            " AND NOT (%(stock)s - i.quantity = coalesce(g.units, 0)"
            "          AND coalesce(g.units, 0) = coalesce(d.units, 0))",
            {"v": seller.user_id, "p": load.products, "stock": STOCK},
        ).fetchall()
        units = conn.execute(
            "SELECT coalesce(sum(%(stock)s - quantity), 0) FROM products.items"
            " WHERE id = ANY(%(p)s)",
            {"p": load.products, "stock": STOCK},
        ).fetchone()
        if mismatched:
            problems.append(
                f"stock != ledger != lines sold for {len(mismatched)} products, e.g. "
                f"(id, consumed, ledger, sold) {mismatched[:3]}"
            )
        lines.append(
            f"- Stock: {units[0] if units else 0} units consumed over {len(load.products)} "
            "products; stock = ledger = lines sold for "
            f"{'every' if not mismatched else 'NOT every'} product."
        )
        # 3. Audit and notifications catch up (bounded poll), then one record of each per sale.
        # The consumer's message: item names and quantities in sale order.
        messages = {
            sale_id: f"Venta registrada de los productos {names} con cantidades {quantities}."
            for sale_id, names, quantities in conn.execute(
                "SELECT sale_id, string_agg(item_name, ', ' ORDER BY id),"
                " string_agg(quantity::text, ', ' ORDER BY id) FROM sales.sale_lines"
                " WHERE sale_id = ANY(%s) GROUP BY sale_id",
                (list(sales),),
            )
        }
        expected_messages = Counter(messages.values())
        started = time.monotonic()
        caught_up: float | None = None
        while True:
            audit: dict[int, int] = dict(
                conn.execute(
                    "SELECT entity_id, count(*) FROM audit.audit_log"
                    " WHERE event_type = 'sale.created' AND entity_id = ANY(%s) GROUP BY entity_id",
                    (list(sales),),
                ).fetchall()
            )
            notified = Counter(
                row[0]
                for row in conn.execute(
                    "SELECT message FROM notifications.notifications"
                    " WHERE user_id = %s AND title = 'Venta registrada'",
                    (seller.user_id,),
                )
            )
            groups, dead = consumer_state(redis_url, stream)
            settled = all(lag == 0 and pending == 0 for lag, pending in groups.values())
            if len(audit) == len(sales) and notified == expected_messages and settled:
                caught_up = time.monotonic() - started
                break
            if time.monotonic() - started > CATCH_UP_LIMIT:
                break
            time.sleep(0.5)
    doubled_audit = [sale_id for sale_id, n in audit.items() if n != 1]
    if len(audit) != len(sales) or doubled_audit:
        problems.append(
            f"audit: {len(audit)} of {len(sales)} sales have a sale.created record, "
            f"{len(doubled_audit)} have more than one"
        )
    if notified != expected_messages:
        lacking = expected_messages - notified
        extra = notified - expected_messages
        problems.append(
            f"notifications: {sum(lacking.values())} sales without their 'Venta registrada' "
            f"notification, {sum(extra.values())} notifications too many"
        )
    stuck = {name: state for name, state in groups.items() if state != (0, 0)}
    if stuck:
        problems.append(f"consumer groups not caught up (lag, pending): {stuck}")
    if dead:
        problems.append(f"{dead} events dead-lettered ({stream}:dead)")
    lines.append(
        f"- Audit: {len(audit)} of {len(sales)} sales have exactly one `sale.created` record; "
        f"notifications: {sum(notified.values())} 'Venta registrada' for {len(sales)} sales "
        f"(message by message); consumer groups (lag, pending) {groups}; dead letters {dead}; "
        + (
            f"caught up {caught_up:.1f} s after the load stopped."
            if caught_up is not None
            else f"NOT caught up within {CATCH_UP_LIMIT:.0f} s."
        )
    )
    return Verification(problems, lines, caught_up)


# ---------------------------------------------------------------------------------------------
# The run


class SupervisorThread:
    """`run_until_stopped()` (which restarts children per the policy) in a thread."""

    def __init__(self, bench: BenchStack) -> None:
        self.supervisor = bench.stack.supervisor
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.supervisor.run_until_stopped()

    @property
    def gave_up(self) -> bool:
        return not self.thread.is_alive()


async def drive(
    bench: BenchStack, seller: Seller, products: list[int], args: argparse.Namespace
) -> tuple[Load, list[FaultResult], float, list[tuple[float, float]], SupervisorThread]:
    watcher = SupervisorThread(bench)
    load = Load(f"{bench.stack.base_url}/api/sales/bulk", seller.cookies, products, args.clients)
    faults = Faults(bench, load)
    load.started = time.monotonic()
    runner = asyncio.create_task(load.run())
    steady, hold = (3.0, 2.0) if args.quick else (8.0, 4.0)
    plan = [Fault(f"kill -9 {name}", name, "kill") for name in SERVICES_KILLED]
    plan += [Fault("kill -9 PostgreSQL", "postgres", "kill")]
    plan += [Fault("kill -9 Redis", "redis", "kill")]
    plan += [Fault(f"SIGSTOP sales {FREEZE_SECONDS:.0f} s", "sales", "stop")]
    results: list[FaultResult] = []
    gateway_down: list[tuple[float, float]] = []
    await asyncio.sleep(steady)
    baseline_sales = sum(1 for a in load.attempts if a.outcome == "201")
    baseline_seconds = time.monotonic() - load.started
    for fault in plan:
        if watcher.gave_up:
            break
        print(f"{fault.name} ...", flush=True)
        result = await faults.inject(fault)
        await asyncio.sleep(hold)
        result.ended = time.monotonic()
        if fault.target == "gateway":
            back = result.process_back_after or RECOVERY_LIMIT
            gateway_down.append((result.injected, result.injected + back))
        results.append(result)
        rec = result.recovered_after
        print(
            f"  checkouts ok again after {rec if rec is None else round(rec, 2)} s, "
            f"process back after {result.process_back_after}",
            flush=True,
        )
        await asyncio.sleep(max(0.0, steady - hold))
    load.stop.set()
    await runner
    restarts = dict(getattr(bench.stack.supervisor, "restarts", {}))
    for result in results:
        summarise(result, load.attempts, restarts)
    return load, results, baseline_sales / baseline_seconds, gateway_down, watcher


def report(
    args: argparse.Namespace,
    load: Load,
    results: list[FaultResult],
    baseline: float,
    verification: Verification,
    problems: list[str],
    loads: tuple[float, float],
) -> str:
    command = "python -m bench.faults_bench" + (" --quick" if args.quick else "")
    command += f" --clients {args.clients}"
    total = Counter(a.outcome for a in load.attempts)
    lines = [
        "# Fault bench",
        "",
        f"Command: `{command}` (or `make bench NAME=faults ARGS=...`).",
        f"Machine: {machine()}; load average {loads[0]:.1f} before the run, {loads[1]:.1f} "
        "after (the machine is shared: other sessions' tests run on it too).",
        "",
        "Setup as `stockmanager up`: embedded PostgreSQL and Redis, migrations, root, gateway and "
        f"every service as real processes under `Supervisor(restart={POLICY})`. "
        f"{args.clients} clients, one checkout at a time each (`POST /api/sales/bulk`, 3 lines, "
        "own `Idempotency-Key`), retrying the same key on 503/504/connection errors after "
        f"{'/'.join(str(b) for b in BACKOFF)} s. PostgreSQL and Redis are killed with SIGKILL to "
        "their main process (the postmaster; Redis' only process); the supervisor watches them "
        "as in `up` (`ManagedSpec` + `recover()`: same port, same data directory) and starts "
        "them again under the same policy. "
        f"Consumers reclaim a dead consumer's messages after {RECLAIM_IDLE_MS} ms "
        "(`STOCKMANAGER_EVENT_RECLAIM_IDLE_MS`, `up`'s default).",
        "",
        f"Steady load before the first fault: {baseline:.0f} sales/s.",
        "",
        "| fault | checkouts OK again after (s) | process ready again after (s) | supervisor "
        "restarts | what clients saw (attempts) | slowest request (s) | load avg |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        rec = "—" if r.recovered_after is None else f"{r.recovered_after:.2f}"
        back = "—" if r.process_back_after is None else f"{r.process_back_after:.2f}"
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        restarts = "—" if r.restarts is None else str(r.restarts)
        lines.append(
            f"| {r.fault.name} | {rec} | {back} | {restarts} | {seen} | {r.max_latency:.2f} | "
            f"{r.load_avg:.1f} |"
        )
    lines += [
        "",
        "Checkouts OK again: the first 201 of a request sent after the fault (the kills of "
        "services off the checkout path never interrupt checkouts). Process ready: a new pid "
        "answering /readyz (for PostgreSQL/Redis: the server started again and accepting "
        "connections). What clients saw: every attempt that started during the fault's "
        "window or was in flight when it hit.",
        "",
        f"All attempts: {', '.join(f'{k}: {v}' for k, v in sorted(total.items()))}; slowest "
        f"request {max((a.ended - a.started for a in load.attempts), default=0):.2f} s "
        f"(upstream timeout {UPSTREAM_TIMEOUT:.0f} s).",
        "",
        "After the load:",
        "",
        *verification.lines,
        "",
    ]
    if problems:
        lines += ["**VIOLATIONS:**", "", *(f"- {p}" for p in problems), ""]
    else:
        lines += ["Verdict: OK, no violation.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter steady stretches")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    loads_before = os.getloadavg()[0]
    env = {"STOCKMANAGER_EVENT_RECLAIM_IDLE_MS": str(RECLAIM_IDLE_MS)}
    with bench_stack(extra_env=env, restart=POLICY) as bench:
        products = seed_products(bench.database_url, args.products, random.Random(42))
        seller = create_seller(bench.stack)
        load, results, baseline, gateway_down, watcher = asyncio.run(
            drive(bench, seller, products, args)
        )
        problems = check_clients(load, gateway_down, load.started)
        if watcher.gave_up:
            problems.append(f"the supervisor stopped the system (code {watcher.code}): see its log")
        for r in results:
            if r.recovered_after is None:
                problems.append(f"{r.fault.name}: checkouts did not succeed again")
            if r.process_back_after is None:
                problems.append(f"{r.fault.name}: the process was not ready again")
        print("load stopped; verifying ...", flush=True)
        verification = verify(bench, load, seller)
        problems += verification.problems
    text = report(
        args, load, results, baseline, verification, problems, (loads_before, os.getloadavg()[0])
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else ""
    marker = "\n## Analysis"
    analysis = existing[existing.index(marker) :] if marker in existing else ""
    args.output.write_text(text + analysis)
    print(text)
    if problems:
        print("FAILED: violations listed above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
