"""A small process manager: start child processes, wait until ready, stream their logs, stop.

Used by `stockmanager up` (gateway + every service replica) and by whole-system tests.

- Every child runs in its own session/process group (`start_new_session=True`): a Ctrl-C in the
  terminal reaches only the supervisor, which then stops the children in order, and signals sent
  by the supervisor reach a child's own children too (uvicorn workers, reloaders).
- A child's environment is the supervisor's environment updated with `ProcessSpec.env`;
  `PYTHONUNBUFFERED=1` is added unless the spec sets it, so Python children stream line by line.
- stdout and stderr are merged into one pipe per child and pumped by one daemon thread, which
  prefixes each line with `name | ` and keeps the last lines for error messages.
- Exits caused by `stop()`, `restart()` or a terminating `kill()` are expected; any other exit
  makes `run_until_stopped()` stop everything and return non-zero.
"""

from __future__ import annotations

import contextlib
import itertools
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
from types import FrameType
from typing import IO, Any, TextIO

__all__ = ["ProcessSpec", "Supervisor", "SupervisorError"]

_POLL = 0.05
_TAIL_LINES = 40
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

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Runs `specs` as child processes; see the module docstring for the guarantees."""

    def __init__(
        self,
        specs: list[ProcessSpec],
        *,
        log_prefix_width: int = 14,
        out: TextIO = sys.stdout,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate process names in {names}")
        self._children = {
            s.name: _Child(s, c) for s, c in zip(specs, itertools.cycle(_COLOURS), strict=False)
        }
        self._width = max([log_prefix_width, *(len(n) for n in names)])
        self._out = out
        self._colour = _isatty(out) and "NO_COLOR" not in os.environ
        self._out_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._exits: queue.Queue[tuple[str, int, int]] = queue.Queue()
        self._stopping = False
        self._signalled: int | None = None
        self._force = False

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

    def returncode(self, name: str) -> int | None:
        proc = self._child(name).proc
        return None if proc is None else proc.poll()

    def start(self) -> None:
        """Start every child that is not running, each in its own process group."""
        with self._state_lock:
            self._stopping = False
            for child in self._children.values():
                if not child.running:
                    self._spawn(child)

    def wait_ready(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> None:
        """Poll each child's `ready_url` until it answers 200.

        Raises `SupervisorError` naming the child (with its last output) if it exits first or is
        not ready within `timeout` seconds. Children without a `ready_url` only need to run.
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
                if code is not None:
                    self._join_pump(child, 2.0)
                    raise SupervisorError(
                        child.spec.name, f"exited with code {code} before ready", list(child.tail)
                    )
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
                try:
                    name, generation, rc = self._exits.get(timeout=0.1)
                except queue.Empty:
                    continue
                child = self._children[name]
                if child.generation != generation or child.expected_exit or self._stopping:
                    continue
                self._note(f"{name} exited unexpectedly with code {rc}, stopping everything")
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
        """SIGTERM every child's process group, wait up to `timeout`, SIGKILL leftovers."""
        with self._state_lock:
            self._stopping = True
            children = [c for c in self._children.values() if c.proc is not None]
            self._terminate(children, timeout)

    def restart(self, name: str, timeout: float = 8.0) -> None:
        """Stop the named child (if running) and start it again; does not wait for readiness."""
        with self._state_lock:
            child = self._child(name)
            if child.proc is not None:
                self._terminate([child], timeout)
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
        stream: IO[bytes] | None = proc.stdout
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                for raw in iter(stream.readline, b""):
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    child.tail.append(line)
                    self._emit(child.spec.name, child.colour, line)
            with contextlib.suppress(OSError):
                stream.close()
        rc = proc.wait()
        self._exits.put((child.spec.name, generation, rc))

    def _join_pump(self, child: _Child, timeout: float) -> None:
        pump = child.pump
        if pump is not None and pump is not threading.current_thread():
            pump.join(timeout)

    def _emit(self, name: str, colour: int, line: str) -> None:
        prefix = f"{name:<{self._width}} | "
        if self._colour:
            prefix = f"\x1b[{colour}m{prefix}\x1b[0m"
        with self._out_lock, contextlib.suppress(OSError, ValueError):
            self._out.write(prefix + line + "\n")
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
