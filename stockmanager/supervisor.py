"""A small process manager: start child processes, wait until ready, stream their logs, stop.

Used by `stockmanager up` (gateway + every service replica) and by whole-system tests.

- Every child runs in its own session/process group (`start_new_session=True`): a Ctrl-C in the
  terminal reaches only the supervisor, which then stops the children in order, and signals sent
  by the supervisor reach a child's own children too (uvicorn workers, reloaders).
- A child's environment is the supervisor's environment updated with `ProcessSpec.env`;
  `PYTHONUNBUFFERED=1` is added unless the spec sets it, so Python children stream line by line.
- stdout and stderr are merged into one pipe per child and pumped by one daemon thread, which
  prefixes each line with `name | ` and keeps the last lines for error messages.
- Exits caused by `stop()`, `restart()` or a terminating `kill()` are expected. Any other exit:
  - with `restart=None`: `run_until_stopped()` stops everything and returns non-zero;
  - with a `RestartPolicy`: the child is started again after an exponential backoff
    (`initial_backoff` doubling per restart within `window`, capped at `max_backoff`), logged as
    `<name> exited with code X; restart N in Ys` and counted in `Supervisor.restarts`. More than
    `max_restarts` restarts of one child within `window` seconds is a crash loop: everything is
    stopped and `run_until_stopped()` returns non-zero. A stop (signal or `stop()`) cancels
    pending restarts; a restart never starts once a stop has begun.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO

__all__ = ["ManagedSpec", "ProcessSpec", "RestartPolicy", "Supervisor", "SupervisorError"]

_POLL = 0.05
_TAIL_LINES = 40
# One read of a child's output pipe takes at most this much (a pipe holds 64 KiB by default).
_READ_SIZE = 65536
_TERMINATING: frozenset[int] = frozenset(
    {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
)
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
_COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94, 31, 91)


@dataclass
class ProcessSpec:
    """One child process. `env` is layered over the supervisor's own environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None  # polled with HTTP GET until it answers 200


@dataclass
class ManagedSpec:
    """A server started and stopped by code in this process (embedded PostgreSQL and Redis).

    `start()` blocks until the server is ready and raises if it cannot start; it is called to
    bring the server back after it died (so it must reuse the port and data). `pid()` is the
    server's pid while it runs, else None; `returncode()` its exit code once it has exited.
    The supervisor watches it (polling `pid()`) under the same restart policy as its child
    processes, and stops it after every child process.
    """

    name: str
    start: Callable[[], object]
    stop: Callable[[], object]
    pid: Callable[[], int | None]
    returncode: Callable[[], int | None] = lambda: None


@dataclass(frozen=True)
class RestartPolicy:
    """When and how often an unexpectedly exited child is started again (see module docstring)."""

    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    max_restarts: int = 5
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")
        if self.max_restarts < 0 or self.window <= 0:
            raise ValueError("need max_restarts >= 0 and window > 0")

    def backoff(self, recent: int) -> float:
        """Delay before the next restart when `recent` restarts happened within the window."""
        return float(min(self.max_backoff, self.initial_backoff * (2 ** min(recent, 32))))


class SupervisorError(RuntimeError):
    """A child failed to start or get ready; `name` and its last log lines are attached."""

    def __init__(self, name: str, reason: str, log_tail: list[str]) -> None:
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
        tail = "\n".join(f"  {line}" for line in log_tail) or "  (no output)"
        super().__init__(f"{name}: {reason}\n--- last output of {name} ---\n{tail}")


class _Child:
    def __init__(self, spec: ProcessSpec, colour: int) -> None:
        self.spec = spec
        self.colour = colour
        self.proc: subprocess.Popen[bytes] | None = None
        self.pump: threading.Thread | None = None
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.expected_exit = False  # set before we stop/kill it on purpose
        self.generation = 0
        self.restarts = 0
        self.restart_times: deque[float] = deque()  # monotonic times of restarts in the window
        self.due: float | None = None  # a restart is pending at this monotonic time
        self.last_exit: int | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _Server:
    def __init__(self, spec: ManagedSpec) -> None:
        self.spec = spec
        self.watching = False
        self.expected_exit = False
        self.restarts = 0
        self.restart_times: deque[float] = deque()
        self.due: float | None = None
        self.last_exit: int | None = None
        self.thread: threading.Thread | None = None  # a restart in progress
        self.error: BaseException | None = None  # how the last restart failed


class Supervisor:
    """Runs `specs` as child processes; see the module docstring for the guarantees.

    `servers` (embedded PostgreSQL/Redis, see `ManagedSpec`) are watched and restarted under the
    same policy. With `status_path`, the state of every child and server (`status()`) is written
    there as JSON whenever it changes (see docs/operations.md "Self-healing").
    """

    def __init__(
        self,
        specs: list[ProcessSpec],
        *,
        log_prefix_width: int = 14,
        out: TextIO = sys.stdout,
        restart: RestartPolicy | None = None,
        servers: Iterable[ManagedSpec] = (),
        status_path: Path | None = None,
    ) -> None:
        self._servers = {s.name: _Server(s) for s in servers}
        names = [s.name for s in specs]
        every = [*self._servers, *names]
        if len(set(every)) != len(every):
            raise ValueError(f"duplicate process names in {every}")
        self._children = {
            s.name: _Child(s, c) for s, c in zip(specs, itertools.cycle(_COLOURS), strict=False)
        }
        self._status_path = status_path
        self._width = max([log_prefix_width, *(len(n) for n in names)])
        self._out = out
        self._colour = _isatty(out) and "NO_COLOR" not in os.environ
        self._out_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._exits: queue.Queue[tuple[str, int, int]] = queue.Queue()
        self._stopping = False
        self._signalled: int | None = None
        self._force = False
        self._policy = restart
        self.crash_loop: str | None = None  # why the restart policy gave up, once it has

    # -- public API ---------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._children)

    def pid(self, name: str) -> int | None:
        """Pid of the named child while it runs, else None."""
        child = self._child(name)
        return child.proc.pid if child.running and child.proc else None

    @property
    def pids(self) -> dict[str, int]:
        """Pids of the running children."""
        return {n: p for n in self._children if (p := self.pid(n)) is not None}

    @property
    def restarts(self) -> dict[str, int]:
        """How often each child (and server) was restarted by the restart policy."""
        counts = {n: c.restarts for n, c in self._children.items()}
        counts.update({n: s.restarts for n, s in self._servers.items()})
        return counts

    def status(self) -> dict[str, dict[str, Any]]:
        """Per child: `pid` (None unless running), `state` (`running`, `restarting` while a
        restart is pending, `stopped`), `restarts` and `last_exit_code`."""
        with self._state_lock:
            result: dict[str, dict[str, Any]] = {}
            for name, child in self._children.items():
                if child.running:
                    state = "running"
                elif child.due is not None:
                    state = "restarting"
                else:
                    state = "stopped"
                result[name] = {
                    "pid": self.pid(name),
                    "state": state,
                    "restarts": child.restarts,
                    "last_exit_code": child.last_exit,
                }
            for name, server in self._servers.items():
                pid = server.spec.pid()
                if pid is not None:
                    state = "running"
                elif server.due is not None or server.thread is not None:
                    state = "restarting"
                else:
                    state = "stopped"
                result[name] = {
                    "pid": pid,
                    "state": state,
                    "restarts": server.restarts,
                    "last_exit_code": server.last_exit,
                }
            return result

    def returncode(self, name: str) -> int | None:
        proc = self._child(name).proc
        return None if proc is None else proc.poll()

    def start(self) -> None:
        """Start every server and child that is not running, each in its own process group."""
        with self._state_lock:
            self._stopping = False
            for server in self._servers.values():
                if server.spec.pid() is None:
                    server.spec.start()
                server.watching = True
                server.expected_exit = False
            for child in self._children.values():
                if not child.running:
                    self._spawn(child)
        self._publish()

    def wait_ready(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> None:
        """Poll each child's `ready_url` until it answers 200.

        Raises `SupervisorError` naming the child (with its last output) if it exits first or is
        not ready within `timeout` seconds. Children without a `ready_url` only need to run.
        With a restart policy, a child that exits first is restarted as it would be later, and
        only a crash loop raises (a transient failure at startup does not stop the system).
        """
        deadline = time.monotonic() + timeout
        pending = [self._child(n) for n in (names if names is not None else self._children)]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies
        while True:
            still: list[_Child] = []
            for child in pending:
                proc = child.proc
                if proc is None:
                    raise SupervisorError(child.spec.name, "not started", [])
                code = proc.poll()
                if code is not None and child.due is not None:
                    still.append(child)  # its restart is pending
                    continue
                if code is not None:
                    self._join_pump(child, 2.0)
                    if self._policy is None or self._stopping:
                        raise SupervisorError(
                            child.spec.name,
                            f"exited with code {code} before ready",
                            list(child.tail),
                        )
                    child.last_exit = code
                    if not self._schedule_restart(child, code):
                        raise SupervisorError(
                            child.spec.name, self.crash_loop or "crash loop", list(child.tail)
                        )
                    self._publish()
                    still.append(child)
                    continue
                url = child.spec.ready_url
                if url is not None and not _http_ok(opener, url):
                    still.append(child)
            if not still:
                return
            pending = still
            if time.monotonic() >= deadline:
                first = pending[0]
                others = ", ".join(c.spec.name for c in pending[1:])
                reason = f"not ready after {timeout:g}s ({first.spec.ready_url})"
                if others:
                    reason += f"; also not ready: {others}"
                raise SupervisorError(first.spec.name, reason, list(first.tail))
            time.sleep(_POLL)
            self._restart_due()

    def run_until_stopped(self, stop_timeout: float = 8.0) -> int:
        """Stream logs until SIGINT/SIGTERM (→ 0) or an unexpected child exit (→ non-zero).

        Stops every child (`stop(stop_timeout)`) before returning; a second SIGINT/SIGTERM skips
        the grace period and kills at once.
        Signal handlers are installed only when called from the main thread.
        """
        previous: dict[int, _Handler] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        code = 0
        try:
            while True:
                if self._signalled is not None:
                    self._note(f"received {signal.Signals(self._signalled).name}, stopping")
                    break
                if self._stopping:
                    break
                self._restart_due()
                if self._check_servers():
                    code = 1
                    break
                try:
                    name, generation, rc = self._exits.get(timeout=self._wait_time())
                except queue.Empty:
                    continue
                child = self._children[name]
                if child.generation != generation or child.expected_exit or self._stopping:
                    continue
                child.last_exit = rc
                if self._schedule_restart(child, rc):
                    self._publish()
                    continue
                code = rc if rc > 0 else (128 - rc if rc < 0 else 1)
                break
            self.stop(stop_timeout)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._signalled = None
            self._force = False
        return code

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM every child's process group, wait up to `timeout`, SIGKILL leftovers.

        Pending restarts are cancelled."""
        with self._state_lock:
            self._stopping = True
            for child in self._children.values():
                child.due = None
            for server in self._servers.values():
                server.due = None
            children = [c for c in self._children.values() if c.proc is not None]
            self._terminate(children, timeout)
            # Servers last (the services above may flush to them while stopping), newest first.
            for server in reversed(self._servers.values()):
                server.watching = False
                server.expected_exit = True
                thread = server.thread
                if thread is not None:
                    thread.join()  # a restart in progress: bounded by the server's start timeout
                    server.thread = None
                try:
                    server.spec.stop()
                except Exception as exc:  # noqa: BLE001 - stop the others regardless
                    self._note(f"{server.spec.name} did not stop cleanly: {exc}")
        self._publish()

    def restart(self, name: str, timeout: float = 8.0) -> None:
        """Stop the named child (if running) and start it again; does not wait for readiness."""
        with self._state_lock:
            child = self._child(name)
            if child.proc is not None:
                self._terminate([child], timeout)
            child.due = None
            self._spawn(child)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the named child's process group (a terminating signal is expected)."""
        with self._state_lock:
            child = self._child(name)
            if child.proc is None or child.proc.poll() is not None:
                return
            if sig in _TERMINATING:
                child.expected_exit = True
            _killpg(child.proc.pid, sig)

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _child(self, name: str) -> _Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(f"no process named {name!r}; known: {list(self._children)}") from None

    def _schedule_restart(self, child: _Child | _Server, rc: int) -> bool:
        """Plan the restart of an unexpectedly exited child; False: stop everything instead."""
        name = child.spec.name
        policy = self._policy
        if policy is None:
            self._note(f"{name} exited unexpectedly with code {rc}, stopping everything")
            return False
        now = time.monotonic()
        recent = child.restart_times
        while recent and recent[0] <= now - policy.window:
            recent.popleft()
        if len(recent) >= policy.max_restarts:
            self.crash_loop = (
                f"{name} exited with code {rc}: crash loop ({len(recent)} restarts within "
                f"{policy.window:g}s, at most {policy.max_restarts} allowed)"
            )
            self._note(f"{self.crash_loop}, stopping everything")
            return False
        delay = policy.backoff(len(recent))
        with self._state_lock:
            if self._stopping:
                return True
            child.restarts += 1
            recent.append(now)
            child.due = now + delay
        self._note(f"{name} exited with code {rc}; restart {child.restarts} in {delay:g}s")
        return True

    def _check_servers(self) -> bool:
        """Watch the servers: start due restarts, notice deaths. True: stop everything."""
        now = time.monotonic()
        changed = False
        for name, server in self._servers.items():
            thread = server.thread
            if thread is not None:
                if thread.is_alive():
                    continue
                server.thread = None
                changed = True
                if server.error is None:
                    self._note(f"{name} is back (pid {server.spec.pid()})")
                    continue
                self._note(f"{name} did not come back: {server.error}")
                server.last_exit = server.spec.returncode()
                if not self._schedule_restart(server, 1):
                    return True
                continue
            if server.due is not None:
                if server.due <= now:
                    with self._state_lock:
                        if self._stopping:
                            return False
                        server.due = None
                        server.error = None
                        server.thread = threading.Thread(
                            target=self._recover_server,
                            args=(server,),
                            name=f"supervisor-restart-{name}",
                            daemon=True,
                        )
                        server.thread.start()
                continue
            if not server.watching or server.expected_exit or server.spec.pid() is not None:
                continue
            rc = server.spec.returncode()
            server.last_exit = rc
            changed = True
            if not self._schedule_restart(server, -1 if rc is None else rc):
                return True
        if changed:
            self._publish()
        return False

    def _recover_server(self, server: _Server) -> None:
        try:
            server.spec.start()
        except Exception as exc:  # noqa: BLE001 - reported and retried by the watch loop
            server.error = exc

    def _publish(self) -> None:
        """Write `status()` to `status_path` (atomically: readers never see half a file)."""
        path = self._status_path
        if path is None:
            return
        document = {
            "supervisor_pid": os.getpid(),
            "updated_at": time.time(),
            "processes": self.status(),
        }
        tmp = path.with_name(path.name + ".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(document, sort_keys=True) + "\n")
            tmp.replace(path)

    def _restart_due(self) -> None:
        now = time.monotonic()
        changed = False
        for child in self._children.values():
            if child.due is None or child.due > now:
                continue
            with self._state_lock:
                # Checked under the lock `stop()` takes: no restart once a stop has begun.
                if self._stopping or child.due is None:
                    continue
                child.due = None
                changed = True
                try:
                    self._spawn(child)
                except SupervisorError as exc:
                    self._note(str(exc))
                    # Counts as an exit of that attempt: the policy decides what comes next.
                    self._exits.put((child.spec.name, child.generation, 127))
        if changed:
            self._publish()

    def _wait_time(self) -> float:
        dues = [c.due for c in self._children.values() if c.due is not None]
        dues += [s.due for s in self._servers.values() if s.due is not None]
        if not dues:
            return 0.1
        return max(0.0, min(0.1, min(dues) - time.monotonic()))

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        env = {**os.environ, **spec.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        child.generation += 1
        child.expected_exit = False
        try:
            proc = subprocess.Popen(
                spec.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise SupervisorError(spec.name, f"could not start {spec.argv[:1]}: {exc}", []) from exc
        child.proc = proc
        child.pump = threading.Thread(
            target=self._pump,
            args=(child, proc, child.generation),
            name=f"supervisor-{spec.name}",
            daemon=True,
        )
        child.pump.start()

    def _pump(self, child: _Child, proc: subprocess.Popen[bytes], generation: int) -> None:
        stream = proc.stdout
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                self._relay_lines(child, stream)
            with contextlib.suppress(OSError):
                stream.close()
        rc = proc.wait()
        self._exits.put((child.spec.name, generation, rc))

    def _relay_lines(self, child: _Child, stream: IO[bytes]) -> None:
        """Copy the child's output to ours, line by line, as much as has arrived at once.

        Under load every process logs a line per request: whatever the pipe holds is read in
        one call and written with one write, instead of a write and a flush per line (they
        were most of the supervisor's CPU). A line is only ever written whole.
        """
        read = getattr(stream, "read1", stream.read)
        pending = b""
        while chunk := read(_READ_SIZE):
            *complete, pending = (pending + chunk).split(b"\n")
            if complete:
                self._emit_lines(child, complete)
        if pending:
            self._emit_lines(child, [pending])

    def _emit_lines(self, child: _Child, raw_lines: list[bytes]) -> None:
        lines = [raw.decode("utf-8", "replace").rstrip("\r") for raw in raw_lines]
        child.tail.extend(lines)
        self._emit(child.spec.name, child.colour, *lines)

    def _join_pump(self, child: _Child, timeout: float) -> None:
        pump = child.pump
        if pump is not None and pump is not threading.current_thread():
            pump.join(timeout)

    def _emit(self, name: str, colour: int, *lines: str) -> None:
        prefix = f"{name:<{self._width}} | "
        if self._colour:
            prefix = f"\x1b[{colour}m{prefix}\x1b[0m"
        text = "".join(f"{prefix}{line}\n" for line in lines)
        with self._out_lock, contextlib.suppress(OSError, ValueError):
            self._out.write(text)
            self._out.flush()

    def _note(self, message: str) -> None:
        self._emit("supervisor", 1, message)

    def _terminate(self, children: list[_Child], timeout: float) -> None:
        live: list[_Child] = []
        for child in children:
            child.expected_exit = True
            proc = child.proc
            if proc is not None and proc.poll() is None:
                _killpg(proc.pid, signal.SIGTERM)
                live.append(child)
        deadline = time.monotonic() + timeout
        while live and time.monotonic() < deadline and not self._force:
            live = [c for c in live if c.proc is not None and c.proc.poll() is None]
            if live:
                time.sleep(_POLL)
        for child in children:
            proc = child.proc
            if proc is None:
                continue
            if proc.poll() is None:
                self._note(f"{child.spec.name} did not stop in {timeout:g}s, killing it")
            # Kill the whole group: leftovers whose leader already exited are reached too.
            _killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
        for child in children:
            self._join_pump(child, 2.0)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only plain attribute writes here: no locks (the main thread may hold them).
        if self._signalled is not None:
            self._force = True
        self._signalled = signum


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _http_ok(opener: urllib.request.OpenerDirector, url: str) -> bool:
    try:
        with opener.open(url, timeout=2.0) as resp:
            status: int = resp.status
            return status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
