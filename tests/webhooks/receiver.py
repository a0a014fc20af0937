"""A real HTTP receiver for webhook tests: verifies every request with the Standard Webhooks
library, records what it got, and can answer 200, fail, hang, or not listen at all."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from stockmanager.embedded import free_port


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    verified: bool
    signatures: int


@dataclass
class Receiver:
    """`mode`: "ok" (200), "fail" (500), "hang" (no answer until `release()`, then 200)."""

    port: int = field(default_factory=free_port)
    mode: str = "ok"
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.hits += 1
                    mode = receiver.mode
                if mode == "hang":
                    # Bounded so that a broken test cannot hang the suite.
                    receiver.released.wait(60)
                    with receiver.lock:
                        mode = receiver.mode
                if mode == "fail":
                    self._answer(500, b'{"error":"receiver failing"}')
                    return
                receiver.record(raw, dict(self.headers.items()))
                self._answer(200, b'{"ok":true}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def release(self) -> None:
        with self.lock:
            self.mode = "ok"
        self.released.set()

    def record(self, raw: bytes, headers: dict[str, str]) -> None:
        verified = False
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        lowered = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.received.append(
                Received(
                    webhook_id=lowered.get("webhook-id", ""),
                    body=json.loads(raw),
                    verified=verified,
                    signatures=len(lowered.get("webhook-signature", "").split()),
                )
            )

    def of_type(self, event_type: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.body["type"] == event_type]

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@contextmanager
def receiving(mode: str = "ok", *, listening: bool = True) -> Iterator[Receiver]:
    receiver = Receiver(mode=mode)
    if listening:
        receiver.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        receiver.stop()
