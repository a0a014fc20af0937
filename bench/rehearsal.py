"""Multi-host rehearsal: a database host and two application hosts in network namespaces.

    sudo .venv/bin/python -m bench.rehearsal [--quick] [--output bench/results/rehearsal.md]
    make rehearsal [ARGS=--quick]

Needs root (`ip netns`) and iproute2. Without Docker it builds, on this machine:

- five network namespaces: `smr-sw` (the switch: a bridge `br0` with 10.203.0.1, where the load
  generator runs), `smr-db` (10.203.0.10: embedded PostgreSQL and Redis from
  stockmanager/embedded.py, listening on that address, `pg_hba` open to 10.203.0.0/24),
  `smr-app1` (10.203.0.11) and `smr-app2` (10.203.0.12), each running every service
  (`stockmanager serve <name> --host 0.0.0.0`), and the gateway on app host 1 with each service's
  URL list naming both hosts. Every veth and the bridge live inside these namespaces; the only
  addresses used are the ones created here (10.203.0.0/24), nothing is routed anywhere else and
  nothing is added to the machine's own network namespace;
- a checkout load through the gateway (`POST /api/sales/bulk`, one `Idempotency-Key` per sale,
  the same key and body retried on 503/504/connection errors);
- mid-load, every process of application host 2 is killed with SIGKILL; the run measures how
  long until checkouts succeed again (target <= 5 s) and what clients saw; then host 2's
  processes are started again and the run proves they rejoin (each service's `/metrics` on
  host 2 counts requests routed to it by the gateway after the restart);
- after the load: every acknowledged sale exists exactly once (and nothing else was sold), the
  stock consumed equals the units sold equals the stock ledger, audit has exactly one
  `sale.created` record per sale, every sale's notification exists, no outbox row is left
  unpublished and no consumer group has pending or undelivered events.

Any violation exits non-zero with a message naming it. Everything (processes, namespaces, veths,
the bridge) is removed on success, failure, Ctrl-C and SIGTERM: the outer process only builds and
tears down the network and runs the rehearsal itself as a child inside `smr-sw`; whatever that
child leaves behind in the namespaces is killed before they are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "rehearsal.md"
PREFIX = "smr"
SWITCH = f"{PREFIX}-sw"
SUBNET = "10.203.0"
SWITCH_ADDRESS = f"{SUBNET}.1"
HOSTS = {
    f"{PREFIX}-db": f"{SUBNET}.10",
    f"{PREFIX}-app1": f"{SUBNET}.11",
    f"{PREFIX}-app2": f"{SUBNET}.12",
}
DB_NS, APP1_NS, APP2_NS = HOSTS
GATEWAY_PORT = 5000
STOCK = 1_000_000
PRODUCTS = 200
LOCK_FILE = Path(tempfile.gettempdir()) / "stockmanager-rehearsal.lock"
RECOVERY_TARGET_S = 5.0
QUIET_ROUTES = ("/healthz", "/readyz", "/metrics")


class Violation(Exception):
    """A broken promise: the run fails with this message."""


def log(message: str) -> None:
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# the network (outer process, root namespace)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ours() -> list[str]:
    return [ns for ns in namespaces() if ns in (SWITCH, *HOSTS)]


def kill_namespace_processes(ns: str, grace: float = 5.0) -> int:
    """SIGTERM, then SIGKILL, every process inside one of *our* namespaces."""

    def pids() -> list[int]:
        out = _ip("netns", "pids", ns, check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    found = pids()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pids():
            break
    return len(found)


def teardown_network() -> None:
    for ns in ours():
        left = kill_namespace_processes(ns)
        if left:
            log(f"cleanup: stopped {left} leftover process(es) in {ns}")
        _ip("netns", "del", ns, check=False)
    remaining = ours()
    if remaining:
        raise RuntimeError(f"could not delete namespaces {remaining}")


def build_network() -> None:
    """The switch namespace holds the bridge; each host gets a veth whose peer is on it."""
    _ip("netns", "add", SWITCH)
    _ip("-n", SWITCH, "link", "add", "br0", "type", "bridge")
    for ns, address in HOSTS.items():
        port = f"p-{ns.removeprefix(PREFIX + '-')}"
        _ip("netns", "add", ns)
        _ip(
            "link",
            "add",
            "eth0",
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            SWITCH,
        )
        _ip("-n", SWITCH, "link", "set", port, "master", "br0")
        _ip("-n", SWITCH, "link", "set", port, "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", SWITCH, "addr", "add", f"{SWITCH_ADDRESS}/24", "dev", "br0")
    _ip("-n", SWITCH, "link", "set", "br0", "up")
    _ip("-n", SWITCH, "link", "set", "lo", "up")


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another rehearsal is running (lock on {LOCK_FILE})") from None
        yield
    finally:
        os.close(fd)


def outer(args: argparse.Namespace, argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("the rehearsal needs root (ip netns): sudo make rehearsal", file=sys.stderr)
        return 2
    if shutil.which("ip") is None:
        print("the rehearsal needs iproute2 (the `ip` command)", file=sys.stderr)
        return 2

    def terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    with exclusive():
        if ours():
            log(f"removing namespaces left by an earlier run: {ours()}")
            teardown_network()
        child: subprocess.Popen[bytes] | None = None
        try:
            build_network()
            log(f"network ready: switch {SWITCH_ADDRESS}, hosts {HOSTS}")
            cmd = ["ip", "netns", "exec", SWITCH, sys.executable, "-m", "bench.rehearsal"]
            child = subprocess.Popen([*cmd, "--inside", *argv], cwd=Path(__file__).parent.parent)
            return child.wait()
        except RuntimeError as exc:  # building the network failed
            print(f"rehearsal: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the rehearsal clean up first
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            log("interrupted: stopping the rehearsal and removing the network")
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)  # it may have had Ctrl-C's SIGINT already
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            teardown_network()
            log("cleanup done: no namespace, veth or bridge of the rehearsal is left")


# --------------------------------------------------------------------------------------------
# the database host (runs inside smr-db)


def db_host(data_dir: Path) -> int:
    """Embedded PostgreSQL and Redis listening on the db host's address; stops on SIGTERM."""
    from stockmanager import embedded

    address = HOSTS[DB_NS]
    # This process lives in the db namespace only: the servers bind, and readiness is probed,
    # on the host's own address instead of loopback.
    embedded.HOST = address
    hba = data_dir / "pg_hba.conf"
    hba.write_text(
        f"local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all {SUBNET}.0/24 trust\n"
    )
    hba.chmod(0o644)

    class NetworkPostgres(embedded.EmbeddedPostgres):
        def _server_cmd(self, port: int) -> list[str]:
            # Open to the application hosts' subnet (the default file allows loopback only).
            return [*super()._server_cmd(port), "-c", f"hba_file={hba}"]

    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    postgres = NetworkPostgres(data_dir / "postgres", port=5432)
    redis = embedded.EmbeddedRedis(data_dir / "redis", port=6379)
    try:
        urls = {"database_url": postgres.start(), "redis_url": redis.start()}
        urls["postgres_pid"] = str(postgres.pid)
        print(json.dumps(urls), flush=True)
        while not stop:
            time.sleep(0.2)
    finally:
        redis.stop()
        postgres.stop()
    return 0


# --------------------------------------------------------------------------------------------
# the application hosts (driven from inside smr-sw)


@dataclass
class Proc:
    host: str
    name: str
    port: int
    popen: subprocess.Popen[bytes] | None = None


@dataclass
class Cluster:
    workdir: Path
    env: dict[str, str]
    services: list[str]
    procs: list[Proc] = field(default_factory=list)
    db: subprocess.Popen[bytes] | None = None

    def url(self, host: str, port: int) -> str:
        return f"http://{HOSTS[host]}:{port}"

    @property
    def gateway(self) -> str:
        return self.url(APP1_NS, GATEWAY_PORT)

    def start_db(self) -> dict[str, str]:
        data = self.workdir / "db"
        data.mkdir()
        cmd = [sys.executable, "-m", "bench.rehearsal", "--db-host", str(data)]
        self.db = subprocess.Popen(
            ["ip", "netns", "exec", DB_NS, *cmd],
            stdout=subprocess.PIPE,
            stderr=(self.workdir / "db.log").open("ab"),
            start_new_session=True,
        )
        assert self.db.stdout is not None
        line = self.db.stdout.readline()
        if not line:
            raise Violation(f"the database host did not start: {tail(self.workdir / 'db.log')}")
        urls: dict[str, str] = json.loads(line)
        return urls

    def start_host(self, host: str) -> None:
        from stockmanager.registry import process

        wanted = [(name, process(name).port) for name in self.services]
        if host == APP1_NS:
            wanted.insert(0, ("gateway", GATEWAY_PORT))
        for name, port in wanted:
            env = dict(self.env)
            if name == "gateway":
                for service in self.services:
                    info = process(service)
                    env[info.url_setting] = ",".join(
                        self.url(h, info.port) for h in (APP1_NS, APP2_NS)
                    )
            out = (self.workdir / f"{host}-{name}.log").open("ab")
            argv = [sys.executable, "-m", "stockmanager", "serve", name]
            argv += ["--host", "0.0.0.0", "--port", str(port)]
            popen = subprocess.Popen(
                ["ip", "netns", "exec", host, *argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            out.close()
            self.procs = [p for p in self.procs if (p.host, p.name) != (host, name)]
            self.procs.append(Proc(host, name, port, popen))

    def wait_ready(self, host: str, timeout: float = 120.0) -> float:
        import httpx

        started = time.monotonic()
        deadline = started + timeout
        pending = [p for p in self.procs if p.host == host]
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for proc in list(pending):
                    assert proc.popen is not None
                    if proc.popen.poll() is not None:
                        log_file = self.workdir / f"{host}-{proc.name}.log"
                        raise Violation(
                            f"{proc.name} on {host} exited with {proc.popen.returncode} during "
                            f"startup:\n{tail(log_file)}"
                        )
                    path = "/api/health" if proc.name == "gateway" else "/readyz"
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(self.url(host, proc.port) + path).status_code == 200:
                            pending.remove(proc)
                if pending and time.monotonic() > deadline:
                    names = ", ".join(p.name for p in pending)
                    raise Violation(f"{host}: not ready after {timeout:.0f} s: {names}")
                if pending:
                    time.sleep(0.2)
        return time.monotonic() - started

    def kill_host(self, host: str) -> int:
        killed = 0
        for proc in self.procs:
            if proc.host == host and proc.popen is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGKILL)
                killed += 1
        for proc in self.procs:
            if proc.host == host and proc.popen is not None:
                proc.popen.wait()
        return killed

    def stop(self) -> None:
        for proc in self.procs:
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            if proc.popen is None:
                continue
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if self.db is not None and self.db.poll() is None:
            self.db.send_signal(signal.SIGTERM)
            try:
                self.db.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.db.kill()
                self.db.wait()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------
# the load


@dataclass
class Attempt:
    started: float
    ended: float
    outcome: str  # "201" or the error seen


@dataclass
class Load:
    gateway: str
    cookie: str
    products: list[int]
    concurrency: int
    rng: random.Random = field(default_factory=lambda: random.Random(18))
    attempts: list[Attempt] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)  # key -> sale id
    units: dict[str, int] = field(default_factory=dict)  # key -> units in its body
    lines: dict[str, int] = field(default_factory=dict)
    replayed: int = 0
    violations: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def body(self) -> tuple[bytes, int, int]:
        items = [
            {"item_id": item, "quantity": self.rng.randint(1, 2)}
            for item in self.rng.sample(self.products, 2)
        ]
        payload = {"items": items, "payment_method": "Efectivo"}
        return json.dumps(payload).encode(), sum(i["quantity"] for i in items), len(items)

    async def worker(self, session: Any) -> None:
        import aiohttp

        url = f"{self.gateway}/api/sales/bulk"
        while not self.stop.is_set():
            key = uuid.uuid4().hex
            body, units, lines = self.body()
            headers = {
                "content-type": "application/json",
                "Idempotency-Key": key,
                "Cookie": self.cookie,
            }
            give_up = time.monotonic() + 120
            while True:
                started = time.monotonic()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        payload = await response.read()
                        status = response.status
                        replayed = response.headers.get("Idempotency-Replayed") == "true"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, payload, replayed = 0, type(exc).__name__.encode(), False
                ended = time.monotonic()
                outcome = str(status) if status else f"connection: {payload.decode()}"
                self.attempts.append(Attempt(started, ended, outcome))
                if status == 201:
                    self.acked[key] = int(json.loads(payload)["sale_id"])
                    self.units[key], self.lines[key] = units, lines
                    self.replayed += replayed
                    break
                if status not in (0, 503, 504):
                    self.violations.append(f"checkout answered {status}: {payload[:300]!r}")
                    self.stop.set()
                    return
                if ended > give_up:
                    self.violations.append(f"checkout {key} never acknowledged (last: {outcome})")
                    self.stop.set()
                    return
                await asyncio.sleep(0.1)

    async def run(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=40)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self.worker(session) for _ in range(self.concurrency)))


def recovery(attempts: list[Attempt], killed_at: float, window: float = 15.0) -> dict[str, Any]:
    """What clients saw after the kill: the longest stretch without a successful checkout that
    overlaps [kill, kill + window], the first success of a request sent after the kill, errors."""
    ok = sorted(a.ended for a in attempts if a.outcome == "201")
    before = [t for t in ok if t <= killed_at]
    marks = [before[-1] if before else killed_at, *[t for t in ok if t > killed_at]]
    longest = 0.0
    for previous, current in itertools.pairwise(marks):
        if previous > killed_at + window:
            break
        longest = max(longest, current - max(previous, killed_at))
    after = [a for a in attempts if a.started >= killed_at and a.outcome == "201"]
    first = min((a.ended for a in after), default=float("nan")) - killed_at
    errors: dict[str, int] = {}
    for a in attempts:
        if a.outcome != "201" and a.ended >= killed_at and a.started <= killed_at + window:
            errors[a.outcome] = errors.get(a.outcome, 0) + 1
    return {"gap": longest, "first": first, "errors": errors}


# --------------------------------------------------------------------------------------------
# per-replica counts


def requests_seen(base_url: str) -> dict[str, int]:
    """Requests a service process counted per route, health probes and scrapes excluded (its
    own /metrics, so since that process started)."""
    import httpx

    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("stockmanager_http_requests_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        route = labels.split('route="', 1)[1].split('"', 1)[0]
        if route not in QUIET_ROUTES:
            counts[route] = counts.get(route, 0) + int(float(value))
    return counts


PROBES = {  # one GET per service, through the gateway (as root)
    "products": "/api/products",
    "sales": "/api/sales",
    "users": "/api/users",
    "metrics": "/api/stats",
    "notifications": "/api/notifications/unread",
    "audit": "/api/all",
}


# --------------------------------------------------------------------------------------------
# the rehearsal (inside smr-sw)


def seed(database_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY products.items (barcode, name, quantity, min_quantity, price) FROM STDIN"
            ) as copy,
        ):
            for n in range(PRODUCTS):
                copy.write_row((f"rehearsal{n:05d}", f"Rehearsal product {n}", STOCK, 5, "1.50"))
        rows = conn.execute(
            "SELECT id FROM products.items WHERE barcode LIKE 'rehearsal%' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows]


def login(gateway: str, username: str, password: str) -> str:
    import httpx

    response = httpx.post(
        f"{gateway}/api/login", json={"username": username, "password": password}, timeout=30
    )
    if response.status_code != 200:
        raise Violation(f"login as {username} failed: {response.status_code} {response.text}")
    return "; ".join(f"{k}={v}" for k, v in response.cookies.items())


def create_seller(gateway: str, root_cookie: str) -> tuple[int, str]:
    import httpx

    username, password = "rehearsal-seller", "rehearsal-password"
    response = httpx.post(
        f"{gateway}/api/users",
        json={
            "username": username,
            "email": "rehearsal@example.test",
            "password": password,
            "role": "vendedor",
        },
        headers={"Cookie": root_cookie},
        timeout=30,
    )
    if response.status_code not in (200, 201):
        raise Violation(f"creating the seller failed: {response.status_code} {response.text}")
    cookie = login(gateway, username, password)
    session = httpx.get(f"{gateway}/api/session", headers={"Cookie": cookie}, timeout=30).json()
    return int(session["user_id"]), cookie


def drained(database_url: str, redis_url: str, stream: str) -> tuple[bool, str]:
    import psycopg
    import redis

    with psycopg.connect(database_url) as conn:
        schemas = [
            row[0]
            for row in conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
            )
        ]
        backlog = {
            schema: conn.execute(
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'
            ).fetchone()[0]  # type: ignore[index]
            for schema in schemas
        }
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        groups: dict[str, tuple[int, int]] = {}
        for group in client.xinfo_groups(stream):
            lag = group.get("lag")
            if lag is None:  # Redis < 7: count what lies past the group's last-delivered-id
                after = f"({group['last-delivered-id']}"
                lag = len(client.xrange(stream, min=after, max="+", count=100_000) or ())
            groups[group["name"]] = (int(group.get("pending", 0)), int(lag))
        dead = client.xlen(f"{stream}:dead")
    finally:
        client.close()
    stuck = {k: v for k, v in backlog.items() if v}
    lagging = {k: v for k, v in groups.items() if v != (0, 0)}
    state = f"outbox backlog {stuck or 0}, groups (pending, lag) {groups}, dead letters {dead}"
    return not stuck and not lagging, state


def verify(
    database_url: str, seller_id: int, products: list[int], load: Load
) -> tuple[list[str], dict[str, Any]]:
    import psycopg

    problems: list[str] = []
    ids = list(load.acked.values())
    units = sum(load.units.values())
    lines = sum(load.lines.values())
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} sale id(s) acknowledged for two keys")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM sales.sales WHERE vendor_id = %s", (seller_id,)
        ).fetchall()
        stored = [row[0] for row in rows]
        missing = set(ids) - set(stored)
        extra = set(stored) - set(ids)
        if missing:
            problems.append(f"{len(missing)} acknowledged sale(s) missing: {sorted(missing)[:10]}")
        if extra:
            problems.append(f"{len(extra)} sale(s) recorded but never acknowledged (duplicates?)")
        if len(stored) != len(set(stored)):
            problems.append("a sale id appears twice")
        sold_units, sold_lines = conn.execute(
            "SELECT coalesce(sum(quantity), 0), count(*) FROM sales.sale_lines"
            " WHERE sale_id = ANY(%s)",
            (stored,),
        ).fetchone() or (0, 0)
        consumed = conn.execute(
            "SELECT sum(%s - quantity) FROM products.items WHERE id = ANY(%s)", (STOCK, products)
        ).fetchone()[0]  # type: ignore[index]
        ledger = conn.execute(
            "SELECT coalesce(-sum(delta), 0) FROM products.stock_movements WHERE item_id = ANY(%s)",
            (products,),
        ).fetchone()[0]  # type: ignore[index]
        if not units == sold_units == consumed == ledger:
            problems.append(
                f"units: requested {units}, sold {sold_units}, stock consumed {consumed}, "
                f"ledger {ledger}"
            )
        if sold_lines != lines:
            problems.append(f"sale lines {sold_lines} != requested lines {lines}")
        audit: dict[int, int] = dict(
            conn.execute(
                "SELECT entity_id, count(*) FROM audit.audit_log WHERE event_type = 'sale.created'"
                " AND entity_id = ANY(%s) GROUP BY entity_id",
                (stored,),
            ).fetchall()
        )
        no_audit = [i for i in ids if i not in audit]
        twice = [i for i, n in audit.items() if n != 1]
        if no_audit:
            problems.append(f"{len(no_audit)} sale(s) without an audit record: {no_audit[:10]}")
        if twice:
            problems.append(f"{len(twice)} sale(s) with more than one audit record")
        notified = conn.execute(
            "SELECT count(*) FROM notifications.notifications WHERE user_id = %s"
            " AND title = 'Venta registrada'",
            (seller_id,),
        ).fetchone()[0]  # type: ignore[index]
        if notified != len(ids):
            problems.append(f"{notified} sale notifications for {len(ids)} sales")
    numbers = {
        "sales": len(ids),
        "stored": len(stored),
        "units": units,
        "consumed": consumed,
        "ledger": ledger,
        "audit": sum(audit.values()),
        "notifications": notified,
    }
    return problems, numbers


async def schedule(
    cluster: Cluster, load: Load, plan: dict[str, float], facts: dict[str, Any]
) -> None:
    """Kill host 2 mid-load, restart it, prove it rejoins, then end the load."""
    import httpx

    from stockmanager.registry import process

    loop = asyncio.get_running_loop()
    bulk = "/api/sales/bulk"

    async def seen(host: str, service: str) -> dict[str, int]:
        url = cluster.url(host, process(service).port)
        return await loop.run_in_executor(None, requests_seen, url)

    t0 = time.monotonic()
    facts["t0"] = t0
    await asyncio.sleep(plan["kill_at"])
    if load.stop.is_set():
        return
    facts["host2_sales_before_kill"] = (await seen(APP2_NS, "sales")).get(bulk, 0)
    facts["killed_at"] = time.monotonic()
    facts["killed"] = cluster.kill_host(APP2_NS)
    at = facts["killed_at"] - t0
    log(f"killed {facts['killed']} processes of {APP2_NS} (SIGKILL) at t={at:.1f} s")
    await asyncio.sleep(max(0.0, t0 + plan["restart_at"] - time.monotonic()))
    if load.stop.is_set():
        return
    facts["restarted_at"] = time.monotonic()
    cluster.start_host(APP2_NS)
    facts["ready_after"] = await loop.run_in_executor(None, cluster.wait_ready, APP2_NS)
    ready_at = time.monotonic()
    log(f"{APP2_NS} restarted, ready after {facts['ready_after']:.1f} s")
    # Rejoin: the first checkout that reaches host 2's new sales process.
    first = None
    while time.monotonic() < ready_at + 30 and not load.stop.is_set():
        if (await seen(APP2_NS, "sales")).get(bulk, 0):
            first = time.monotonic() - ready_at
            break
        await asyncio.sleep(0.25)
    facts["rejoin_first_checkout"] = first
    # Every service: a few GETs through the gateway (round-robin reaches both hosts).
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=30) as client:
        for _round in range(4):
            for path in PROBES.values():
                await client.get(path, headers={"Cookie": facts["root_cookie"]})
    await asyncio.sleep(max(0.0, ready_at + plan["after_rejoin"] - time.monotonic()))
    counts: dict[str, tuple[int, int]] = {}
    for name in cluster.services:
        one, two = await seen(APP1_NS, name), await seen(APP2_NS, name)
        counts[name] = (sum(one.values()), sum(two.values()))
        if name == "sales":
            facts["host2_sales_after_restart"] = two.get(bulk, 0)
            facts["host1_sales_total"] = one.get(bulk, 0)
    facts["per_replica"] = counts
    facts["load_seconds"] = time.monotonic() - t0
    load.stop.set()


def inside(args: argparse.Namespace) -> int:
    """The rehearsal proper, run inside the switch namespace."""
    from stockmanager.cli import available_services, bootstrap_root, migrate
    from stockmanager.settings import KernelSettings

    def interrupt(_signum: int, _frame: object) -> None:
        # Ctrl-C reaches this process and the outer one, which forwards SIGTERM as well: the
        # first signal starts the cleanup, the ones after it must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    plan = (
        {"kill_at": 5.0, "restart_at": 10.0, "after_rejoin": 6.0}
        if args.quick
        else {"kill_at": 15.0, "restart_at": 30.0, "after_rejoin": 20.0}
    )
    workdir = Path(tempfile.mkdtemp(prefix="sm-rehearsal-"))
    secret = uuid.uuid4().hex + uuid.uuid4().hex
    root_password = "rehearsal-root-password"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKMANAGER_", "PG"))}
    env.update(
        {
            "STOCKMANAGER_INTERNAL_SECRET": secret,
            "STOCKMANAGER_ROOT_PASSWORD": root_password,
            "STOCKMANAGER_LOG_LEVEL": "WARNING",
            "STOCKMANAGER_EVENT_RECLAIM_IDLE_MS": str(args.reclaim_ms),
        }
    )
    cluster = Cluster(workdir, env, [info.name for info in available_services()])
    facts: dict[str, Any] = {}
    problems: list[str] = []
    try:
        log(f"starting PostgreSQL and Redis on {DB_NS} ({HOSTS[DB_NS]}), work dir {workdir}")
        urls = cluster.start_db()
        env["DATABASE_URL"], env["REDIS_URL"] = urls["database_url"], urls["redis_url"]
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL")})
        os.environ.update({k: v for k, v in env.items() if k.startswith("STOCKMANAGER_")})
        log(f"database host ready: {urls['database_url']}, {urls['redis_url']}; migrating")
        migrate(env["DATABASE_URL"])
        bootstrap_root(root_password)
        products = seed(env["DATABASE_URL"])
        started = time.monotonic()
        for host in (APP1_NS, APP2_NS):
            cluster.start_host(host)
        for host in (APP1_NS, APP2_NS):
            cluster.wait_ready(host)
        log(f"both application hosts ready after {time.monotonic() - started:.1f} s")
        root_cookie = login(cluster.gateway, "root", root_password)
        facts["root_cookie"] = root_cookie
        seller_id, seller_cookie = create_seller(cluster.gateway, root_cookie)
        load = Load(cluster.gateway, seller_cookie, products, args.concurrency)

        async def main() -> None:
            runner = asyncio.create_task(load.run())
            try:
                await schedule(cluster, load, plan, facts)
            finally:
                load.stop.set()
                await runner

        log(f"checkout load at concurrency {args.concurrency} through {cluster.gateway}")
        asyncio.run(main())
        problems += load.violations
        if "killed_at" not in facts or "per_replica" not in facts:
            problems.append("the load stopped before the kill/restart schedule completed")
        else:
            facts["recovery"] = recovery(load.attempts, facts["killed_at"])
            gap = facts["recovery"]["gap"]
            if gap > args.recovery_target:
                problems.append(
                    f"checkouts stalled {gap:.2f} s after host 2 was killed "
                    f"(target <= {args.recovery_target} s)"
                )
            if facts["rejoin_first_checkout"] is None:
                problems.append("host 2 did not receive a checkout within 30 s of its restart")
            for name, (_one, two) in facts["per_replica"].items():
                if two == 0:
                    problems.append(f"{name} on host 2 received no request after its restart")
        stream = KernelSettings().event_stream
        log(f"load done: {len(load.acked)} sales acknowledged; waiting for consumers to drain")
        deadline = time.monotonic() + args.drain_timeout
        drain_started = time.monotonic()
        while True:
            ok, state = drained(env["DATABASE_URL"], env["REDIS_URL"], stream)
            if ok:
                # The consumers' effects are committed before they acknowledge: compare now.
                found, numbers = verify(env["DATABASE_URL"], seller_id, products, load)
                if not found or time.monotonic() > deadline:
                    break
            elif time.monotonic() > deadline:
                found, numbers = verify(env["DATABASE_URL"], seller_id, products, load)
                found.append(f"consumers did not drain within {args.drain_timeout:.0f} s: {state}")
                break
            time.sleep(0.5)
        facts["drain_seconds"] = time.monotonic() - drain_started
        facts["drain_state"] = state
        facts["numbers"] = numbers
        problems += found
        facts["attempts"] = len(load.attempts)
        facts["attempts_list"] = load.attempts
        facts["replayed"] = load.replayed
        facts["all_errors"] = sorted({a.outcome for a in load.attempts if a.outcome != "201"})
        if "recovery" in facts:
            report = render(args, facts, problems)
            print(report, flush=True)
            if args.output:
                Path(args.output).write_text(report)
                log(f"wrote {args.output}")
    except Violation as exc:
        problems.append(str(exc))
    except KeyboardInterrupt:
        log("interrupted")
        problems.append("interrupted")
    finally:
        log("stopping every process of the rehearsal")
        cluster.stop()
        if not problems:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")
    if problems:
        print("\nREHEARSAL FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    log("REHEARSAL PASSED")
    return 0


def timeline(attempts: list[Attempt], killed_at: float) -> list[str]:
    """Checkouts completed per second around the kill (successes, and errors clients saw)."""
    rows = ["| seconds after the kill | checkouts acknowledged | errors seen (retried) |"]
    rows.append("|---:|---:|---:|")
    for second in range(-2, 8):
        start, end = killed_at + second, killed_at + second + 1
        done = [a for a in attempts if start <= a.ended < end]
        ok = sum(a.outcome == "201" for a in done)
        rows.append(f"| {second} to {second + 1} | {ok} | {len(done) - ok} |")
    return rows


def _num(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{format(value, spec)}{unit}"


def render(args: argparse.Namespace, facts: dict[str, Any], problems: list[str]) -> str:
    from bench.common import machine

    rec = facts["recovery"]
    t0 = facts["t0"]
    n = facts["numbers"]
    quick = " --quick" if args.quick else ""
    errors = ", ".join(f"{k}: {v}" for k, v in rec["errors"].items()) or "none"
    lines = [
        "# Multi-host rehearsal",
        "",
        f"Reproduce: `make rehearsal{' ARGS=--quick' if args.quick else ''}` (as root; runs "
        f"`python -m bench.rehearsal{quick}`). Machine: {machine()}; every host is a network "
        f"namespace on this one machine (a bridge on {SUBNET}.0/24), so they share its CPUs "
        "with each other and with whatever else runs on it.",
        "",
        f"Topology: db host {HOSTS[DB_NS]} (embedded PostgreSQL + Redis), app host 1 "
        f"{HOSTS[APP1_NS]} (every service + the gateway), app host 2 {HOSTS[APP2_NS]} (every "
        f"service); the gateway lists both hosts for each service. The load generator sits on "
        f"the switch ({SWITCH_ADDRESS}): `POST /api/sales/bulk` (2 lines) at concurrency "
        f"{args.concurrency}, one Idempotency-Key per sale, the same request retried on "
        f"503/504/connection errors. Event reclaim idle time: {args.reclaim_ms} ms.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| load duration | {facts['load_seconds']:.1f} s |",
        f"| host 2 killed (SIGKILL, all {facts['killed']} processes) at | "
        f"t = {facts['killed_at'] - t0:.1f} s |",
        "| **longest stretch without a successful checkout after the kill** | "
        f"**{rec['gap']:.2f} s** (target <= {args.recovery_target:g} s) |",
        f"| first success of a checkout sent after the kill | {rec['first']:.3f} s |",
        f"| errors clients saw in the 15 s after the kill (all retried) | {errors} |",
        f"| host 2 restarted at | t = {facts['restarted_at'] - t0:.1f} s |",
        f"| host 2 ready (every service /readyz) after | {facts['ready_after']:.1f} s |",
        "| first checkout on host 2 after it was ready | "
        f"{_num(facts['rejoin_first_checkout'], '.2f', ' s')} |",
        "| checkouts served by host 2: before the kill / after the restart | "
        f"{facts['host2_sales_before_kill']} / {facts['host2_sales_after_restart']} |",
        "| sales acknowledged / requests sent (incl. retries) / replayed by key | "
        f"{n['sales']} / {facts['attempts']} / {facts['replayed']} |",
        f"| consumers drained after the load in | {facts['drain_seconds']:.1f} s |",
        "",
        *timeline(facts["attempts_list"], facts["killed_at"]),
        "",
        "Requests per replica at the end of the load (each service process's own `/metrics`, "
        "health probes excluded; host 2's processes count only since their restart):",
        "",
        "| service | host 1 (whole run) | host 2 (after restart) |",
        "|---|---:|---:|",
        *(f"| {name} | {one} | {two} |" for name, (one, two) in facts["per_replica"].items()),
        "",
        f"After the load: {n['stored']} sales stored for {n['sales']} acknowledged; units sold "
        f"{n['units']} = stock consumed {n['consumed']} = ledger {n['ledger']}; audit "
        f"`sale.created` records: {n['audit']}; sale notifications: {n['notifications']}; "
        f"{facts['drain_state']}.",
        "",
        "Error statuses clients saw during the whole run: "
        f"{', '.join(facts['all_errors']) or 'none'}.",
        "",
        "Reading it: a connection refused by a dead replica never reached it, so the gateway "
        "retries it on the other host at once and marks the dead one down for a few seconds; "
        "the 503s are the checkouts that were in flight on host 2 when it died (the gateway "
        "does not retry a POST whose connection dropped: the service may have acted). The "
        "client retried those with the same Idempotency-Key; a replay would mean the sale had "
        "committed before the kill. A restarted replica gets requests again once its "
        "down-marking has expired.",
        "",
        f"Verdict: {'PASSED' if not problems else 'FAILED: ' + '; '.join(problems)}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--output", default=str(RESULTS), help="'' to skip writing results")
    parser.add_argument("--recovery-target", type=float, default=RECOVERY_TARGET_S)
    parser.add_argument("--reclaim-ms", type=int, default=5000, help="event reclaim idle time")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db-host", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.db_host:
        return db_host(Path(args.db_host))
    if args.inside:
        return inside(args)
    return outer(args, argv)


if __name__ == "__main__":
    sys.exit(main())
