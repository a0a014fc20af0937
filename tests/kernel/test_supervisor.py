"""Supervisor: real child processes (tiny HTTP servers), no mocks."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from stockmanager.embedded import EmbeddedRedis, free_port
from stockmanager.supervisor import (
    ManagedSpec,
    ProcessSpec,
    RestartPolicy,
    Supervisor,
    SupervisorError,
)
from tests.support.waiting import eventually, gone

HTTP_SERVER = textwrap.dedent(
    """
    import http.server, sys
    name, port = sys.argv[1], int(sys.argv[2])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            print("served", self.path, flush=True)

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    print(name, "listening on", port, flush=True)
    print(name, "says hi on stderr", file=sys.stderr, flush=True)
    server.serve_forever()
    """
)


def http_spec(name: str) -> ProcessSpec:
    port = free_port()
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-c", HTTP_SERVER, name, str(port)],
        env={"SUPERVISOR_TEST": "1"},
        ready_url=f"http://127.0.0.1:{port}/health",
    )


def script_spec(name: str, code: str) -> ProcessSpec:
    return ProcessSpec(
        name=name, argv=[sys.executable, "-c", textwrap.dedent(code)], env={}, ready_url=None
    )


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def make_supervisor(out: io.StringIO) -> Iterator[Callable[[list[ProcessSpec]], Supervisor]]:
    made: list[Supervisor] = []

    def make(specs: list[ProcessSpec]) -> Supervisor:
        sup = Supervisor(specs, out=out)
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop(timeout=2.0)


def test_two_http_servers_ready_prefixed_logs_and_clean_stop(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor], out: io.StringIO
) -> None:
    sup = make_supervisor([http_spec("alpha"), http_spec("beta-1")])
    sup.start()
    sup.wait_ready(timeout=15)
    pids = sup.pids
    assert set(pids) == {"alpha", "beta-1"}
    for name, pid in pids.items():
        assert os.getpgid(pid) == pid, f"{name} must lead its own process group"

    eventually(lambda: "beta-1         | served /health" in out.getvalue(), what="request log")
    text = out.getvalue()
    assert re.search(r"^alpha {10}\| alpha listening on \d+$", text, re.M)
    assert "alpha          | alpha says hi on stderr\n" in text  # stderr is streamed too
    assert "beta-1         | beta-1 listening on" in text
    assert "\x1b[" not in text  # a StringIO is not a tty: no colours

    sup.stop()
    for pid in pids.values():
        assert gone(pid)
    assert sup.pids == {}
    sup.stop()  # idempotent


def test_a_burst_of_output_is_relayed_whole_and_in_order(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor], out: io.StringIO
) -> None:
    # More than a pipe holds, written at once, then a last line without a newline: the relay
    # reads whatever has arrived in one go and must still write every line whole, prefixed.
    chatty = script_spec(
        "chatty",
        """
        import sys
        sys.stdout.write("".join(f"line {n:05d} " + "x" * 60 + "\\n" for n in range(5000)))
        sys.stdout.write("no newline at the end")
        """,
    )
    sup = make_supervisor([chatty])
    sup.start()
    eventually(lambda: "no newline at the end" in out.getvalue(), what="the last line")
    lines = out.getvalue().splitlines()
    relayed = [line for line in lines if line.startswith("chatty")]
    expected = [f"line {n:05d} " + "x" * 60 for n in range(5000)] + ["no newline at the end"]
    assert [line.split(" | ", 1)[1] for line in relayed] == expected


def test_wait_ready_reports_a_child_that_exits(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor],
) -> None:
    crash = script_spec("crasher", "import sys; print('boom: bad config'); sys.exit(3)")
    crash.ready_url = f"http://127.0.0.1:{free_port()}/"
    sup = make_supervisor([http_spec("ok"), crash])
    sup.start()
    with pytest.raises(SupervisorError) as info:
        sup.wait_ready(timeout=15)
    assert info.value.name == "crasher"
    assert "exited with code 3" in str(info.value)
    assert "boom: bad config" in str(info.value)


def test_wait_ready_times_out_with_the_name_and_last_lines(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor], out: io.StringIO
) -> None:
    slow = script_spec("slowpoke", "import time; print('warming up', flush=True); time.sleep(600)")
    slow.ready_url = f"http://127.0.0.1:{free_port()}/"
    sup = make_supervisor([slow])
    sup.start()
    eventually(lambda: "warming up" in out.getvalue(), what="first output")
    with pytest.raises(SupervisorError, match=re.escape("slowpoke: not ready after 0.3s")) as info:
        sup.wait_ready(timeout=0.3)
    assert info.value.name == "slowpoke"
    assert info.value.log_tail == ["warming up"]
    assert "warming up" in str(info.value)
    pid = sup.pid("slowpoke")
    assert pid is not None
    sup.stop()
    assert gone(pid)


def test_kill_and_restart_one_process(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor],
) -> None:
    sup = make_supervisor([http_spec("consumer"), http_spec("other")])
    sup.start()
    sup.wait_ready(timeout=15)
    old = sup.pid("consumer")
    other = sup.pid("other")
    assert old is not None
    sup.kill("consumer")
    eventually(lambda: gone(old), what="killed consumer to exit")
    assert sup.pid("consumer") is None
    assert sup.returncode("consumer") == -signal.SIGKILL
    sup.restart("consumer")
    sup.wait_ready(timeout=15, names=["consumer"])
    new = sup.pid("consumer")
    assert new is not None and new != old
    assert sup.pid("other") == other  # untouched

    sup.restart("consumer")  # restart of a running process: stop, then start
    sup.wait_ready(timeout=15)
    assert sup.pid("consumer") not in (None, new)
    assert gone(new)


def test_run_until_stopped_returns_nonzero_when_a_child_dies(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor], out: io.StringIO
) -> None:
    sup = make_supervisor([http_spec("steady"), script_spec("dies", "raise SystemExit(5)")])
    sup.start()
    steady = sup.pid("steady")
    assert steady is not None
    assert sup.run_until_stopped() == 5
    assert "dies exited unexpectedly with code 5" in out.getvalue()
    assert gone(steady)  # everything else was stopped


def test_run_until_stopped_on_sigterm_stops_everything_including_grandchildren(
    make_supervisor: Callable[[list[ProcessSpec]], Supervisor], out: io.StringIO
) -> None:
    stubborn = script_spec(
        "stubborn",
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("grandchild", child.pid, flush=True)
        time.sleep(600)
        """,
    )
    sup = make_supervisor([http_spec("web"), stubborn])
    sup.start()
    sup.wait_ready(timeout=15)
    eventually(lambda: "grandchild" in out.getvalue(), what="grandchild pid")
    match = re.search(r"grandchild (\d+)", out.getvalue())
    assert match is not None
    grandchild = int(match.group(1))
    pids = sup.pids
    supervisor_handler_installed = threading.Event()

    def send_sigterm_once_handled() -> None:
        eventually(
            lambda: signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None),
            what="handler",
        )
        supervisor_handler_installed.set()
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    assert previous == signal.SIG_DFL
    sender = threading.Thread(target=send_sigterm_once_handled, daemon=True)
    sender.start()
    started = time.monotonic()
    # The stubborn child ignores SIGTERM: a short grace period keeps the test fast.
    assert sup.run_until_stopped(stop_timeout=0.5) == 0
    sender.join(5)
    assert supervisor_handler_installed.is_set()
    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGTERM) == previous  # handler restored
    assert "received SIGTERM, stopping" in out.getvalue()
    assert "stubborn did not stop in 0.5s, killing it" in out.getvalue()
    # SIGKILL is delivered at once but a loaded machine may take a moment to let the killed
    # grandchild (not our child: nobody waits for it) actually exit.
    for pid in [*pids.values(), grandchild]:
        eventually(lambda pid=pid: gone(pid), what=f"process {pid} to exit")


# -- restart policy ---------------------------------------------------------------------------


def test_restart_policy_backoff_doubles_and_is_capped() -> None:
    policy = RestartPolicy(initial_backoff=0.5, max_backoff=3.0, max_restarts=5, window=60.0)
    assert [policy.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        RestartPolicy(initial_backoff=2.0, max_backoff=1.0)
    with pytest.raises(ValueError):
        RestartPolicy(window=0)


def run_in_thread(sup: Supervisor, **kwargs: float) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(sup.run_until_stopped(**kwargs)), daemon=True
    )
    thread.start()
    return thread, result


def test_a_killed_child_is_restarted_with_backoff_and_counted(out: io.StringIO) -> None:
    policy = RestartPolicy(initial_backoff=0.2, max_backoff=0.4, max_restarts=5, window=60.0)
    sup = Supervisor([http_spec("worker"), http_spec("bystander")], out=out, restart=policy)
    try:
        sup.start()
        sup.wait_ready(timeout=15)
        bystander = sup.pid("bystander")
        thread, result = run_in_thread(sup)
        for attempt, delay in ((1, "0.2"), (2, "0.4"), (3, "0.4")):
            old = sup.pid("worker")
            assert old is not None
            os.kill(old, signal.SIGKILL)  # not via sup.kill(): an unexpected death
            eventually(lambda old=old: sup.pid("worker") not in (None, old), what="restart")
            assert f"worker exited with code -9; restart {attempt} in {delay}s" in out.getvalue()
            sup.wait_ready(timeout=15, names=["worker"])
        assert sup.restarts == {"worker": 3, "bystander": 0}
        assert sup.pid("bystander") == bystander  # untouched
        status = sup.status()
        assert status["worker"]["state"] == "running"
        assert status["worker"]["restarts"] == 3
        assert status["worker"]["last_exit_code"] == -signal.SIGKILL
        assert thread.is_alive() and result == []
    finally:
        sup.stop(timeout=2.0)
    thread.join(10)
    assert result == [0]
    assert "stopping everything" not in out.getvalue()


def test_a_crash_loop_stops_everything_with_a_message(out: io.StringIO) -> None:
    policy = RestartPolicy(initial_backoff=0.05, max_backoff=0.1, max_restarts=3, window=60.0)
    crasher = script_spec("crasher", "import sys; print('bad config'); sys.exit(4)")
    sup = Supervisor([http_spec("steady"), crasher], out=out, restart=policy)
    try:
        sup.start()
        steady = sup.pid("steady")
        assert steady is not None
        assert sup.run_until_stopped(stop_timeout=2.0) == 4
    finally:
        sup.stop(timeout=2.0)
    text = out.getvalue()
    assert "crasher exited with code 4; restart 1 in 0.05s" in text
    assert "crasher exited with code 4; restart 3 in 0.1s" in text
    assert (
        "crasher exited with code 4: crash loop (3 restarts within 60s, at most 3 allowed), "
        "stopping everything" in text
    )
    assert text.count("crasher        | bad config") == 4
    assert sup.restarts["crasher"] == 3
    assert gone(steady)


def test_restarts_outside_the_window_do_not_count_towards_a_crash_loop(
    out: io.StringIO,
) -> None:
    # Each run lives longer than the window: the restarts never pile up.
    policy = RestartPolicy(initial_backoff=0.01, max_backoff=0.01, max_restarts=1, window=0.2)
    flaky = script_spec("flaky", "import time, sys; time.sleep(0.4); sys.exit(1)")
    sup = Supervisor([flaky], out=out, restart=policy)
    try:
        sup.start()
        thread, result = run_in_thread(sup, stop_timeout=2.0)
        eventually(lambda: sup.restarts["flaky"] >= 3, what="three restarts", timeout=20)
        assert result == []
    finally:
        sup.stop(timeout=2.0)
    thread.join(10)
    assert result == [0]
    assert "crash loop" not in out.getvalue()


def test_a_stop_during_a_pending_restart_is_quick_and_final(out: io.StringIO) -> None:
    # A long backoff: the stop arrives while the restart is pending and must cancel it.
    policy = RestartPolicy(initial_backoff=30.0, max_backoff=30.0, max_restarts=5, window=60.0)
    sup = Supervisor([http_spec("web"), http_spec("victim")], out=out, restart=policy)
    try:
        sup.start()
        sup.wait_ready(timeout=15)
        web = sup.pid("web")
        victim = sup.pid("victim")
        assert web is not None and victim is not None
        thread, result = run_in_thread(sup, stop_timeout=2.0)
        os.kill(victim, signal.SIGKILL)
        eventually(lambda: sup.status()["victim"]["state"] == "restarting", what="pending")
        assert "victim exited with code -9; restart 1 in 30s" in out.getvalue()
        started = time.monotonic()
        sup.stop(timeout=2.0)
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 8  # not the 30 s backoff
    finally:
        sup.stop(timeout=2.0)
    assert result == [0]
    assert gone(web)
    assert sup.pids == {}
    assert sup.status()["victim"]["state"] == "stopped"


# -- watched servers (embedded Redis, real) ---------------------------------------------------


def _bound(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def redis_managed(data: Path) -> tuple[EmbeddedRedis, ManagedSpec]:
    server = EmbeddedRedis(data)
    server.start()
    spec = ManagedSpec(
        "redis",
        start=server.recover,
        stop=server.stop,
        pid=lambda: server.pid,
        returncode=lambda: server.returncode,
    )
    return server, spec


def test_a_killed_server_comes_back_on_its_port_and_the_status_file_says_so(
    tmp_path: Path, out: io.StringIO
) -> None:
    server, spec = redis_managed(tmp_path / "redis")
    status_file = tmp_path / "supervisor.json"
    policy = RestartPolicy(initial_backoff=0.1, max_backoff=0.1, max_restarts=3, window=60.0)
    sup = Supervisor(
        [http_spec("web")], out=out, restart=policy, servers=[spec], status_path=status_file
    )
    try:
        sup.start()
        port, old = server.port, server.pid
        assert old is not None
        thread, result = run_in_thread(sup, stop_timeout=2.0)
        os.kill(old, signal.SIGKILL)
        eventually(lambda: server.pid not in (None, old), timeout=30, what="redis back")
        assert server.port == port  # clients keep their URL
        assert redis_lib.Redis(port=port).ping()
        eventually(lambda: "redis is back" in out.getvalue(), what="log line")
        assert "redis exited with code -9; restart 1 in 0.1s" in out.getvalue()

        def status_says_running() -> bool:
            processes = json.loads(status_file.read_text())["processes"]
            return processes["redis"] == {
                "pid": server.pid,
                "state": "running",
                "restarts": 1,
                "last_exit_code": -signal.SIGKILL,
            }

        eventually(status_says_running, what="status file")
        document = json.loads(status_file.read_text())
        assert document["supervisor_pid"] == os.getpid()
        assert document["processes"]["web"]["state"] == "running"
    finally:
        sup.stop(timeout=2.0)
    thread.join(10)
    assert result == [0]
    assert server.pid is None  # the supervisor stops its servers too
    processes = json.loads(status_file.read_text())["processes"]
    assert {entry["state"] for entry in processes.values()} == {"stopped"}


def test_a_server_that_cannot_come_back_is_a_crash_loop(tmp_path: Path, out: io.StringIO) -> None:
    server, spec = redis_managed(tmp_path / "redis")
    # The test takes the port between the kill and the restart: the backoff leaves it a second
    # for that (a 0.05 s backoff lost the race on a loaded machine).
    policy = RestartPolicy(initial_backoff=1.0, max_backoff=1.0, max_restarts=2, window=60.0)
    sup = Supervisor([http_spec("web")], out=out, restart=policy, servers=[spec])
    blocker = socket.socket()
    try:
        sup.start()
        old, port = server.pid, server.port
        assert old is not None and port is not None
        os.kill(old, signal.SIGKILL)
        eventually(lambda: gone(old), what="redis to exit")
        # Its port is taken meanwhile: the restart must not move to another port, so it fails.
        # Redis' leader thread shows as exited before its other threads have closed the
        # listening socket, so take the port as soon as it is free.
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        eventually(lambda: _bound(blocker, port), what=f"port {port} to be free")
        blocker.listen()
        assert sup.run_until_stopped(stop_timeout=2.0) == 1
    finally:
        blocker.close()
        sup.stop(timeout=2.0)
    text = out.getvalue()
    assert "redis exited with code -9; restart 1 in 1s" in text
    assert f"redis did not come back: redis: port {port} is already in use" in text
    assert "redis exited with code 1: crash loop (2 restarts within 60s" in text
    assert server.port == port
