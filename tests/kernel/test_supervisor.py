"""Supervisor: real child processes (tiny HTTP servers), no mocks."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stockmanager.embedded import free_port
from stockmanager.supervisor import ProcessSpec, Supervisor, SupervisorError
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
