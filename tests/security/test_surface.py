"""The gateway's public surface (issue 14): what an outsider learns or reaches on the public port.

- A trailing slash (`/api/products/`) is the canonical path, never a non-JSON redirect to the
  service's internal address; no service answer can carry an internal URL in `Location`.
- `/metrics` and `/readyz` exist only on the gateway's internal listener.
- An anonymous deep health check says healthy or not, nothing more, and is served from a cache
  (it cannot make the gateway fan out to every replica on each call); root sees the details.
- Every answer carries the security headers; proxied answers carry one `Date` and no `Server`.

The tests that need a service to misbehave run a second gateway on the shared stack whose audit
service is a small HTTP server in this test process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from stockmanager.embedded import free_port
from stockmanager.supervisor import Supervisor
from tests.support.stack import Stack, gateway_spec, internal_url


@dataclass
class FakeAudit:
    """Counts the readiness probes it receives; redirects `/api/all` to its own address."""

    url: str = ""
    probes: list[str] = field(default_factory=list)


def _fake_audit() -> tuple[ThreadingHTTPServer, FakeAudit]:
    state = FakeAudit()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/readyz":
                state.probes.append(self.path)
                self._json(200, {"status": "ok"})
            elif self.path.startswith("/api/all"):
                # What a FastAPI service does for a path it only knows without the slash.
                self.send_response(307)
                self.send_header("Location", f"{state.url}/api/all/next?page=2")
                self.send_header("Content-Location", f"{state.url}/api/all")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "no"})

        def _json(self, status: int, body: object) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)  # also sends Server: BaseHTTP/... and a Date
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server, state


@dataclass
class ProbeGateway:
    url: str
    internal_url: str
    audit: FakeAudit


@pytest.fixture(scope="module")
def probe_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbeGateway]:
    """A second gateway on the shared stack: audit is the fake above, the deep health cache
    lasts the whole module (so counting probes does not depend on timing), cookies are Secure."""
    server, audit = _fake_audit()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    env = {
        **stack.env,
        "STOCKMANAGER_AUDIT_URLS": audit.url,
        "STOCKMANAGER_HEALTH_CACHE_SECONDS": "3600",
        "STOCKMANAGER_COOKIE_SECURE": "true",
    }
    spec = gateway_spec("gateway-probe", port, env)
    log = Path(tmp_path_factory.mktemp("surface")) / "gateway.log"
    with log.open("w") as out:
        supervisor = Supervisor([spec], out=out)
        supervisor.start()
        try:
            supervisor.wait_ready(timeout=60)
            yield ProbeGateway(f"http://127.0.0.1:{port}", internal_url(spec), audit)
        finally:
            supervisor.stop()
            server.shutdown()
            server.server_close()


def _root_cookie(stack: Stack) -> dict[str, str]:
    with stack.root() as root:
        return {"Cookie": f"session={root.cookies['session']}"}


def _internal_addresses(stack: Stack) -> list[str]:
    return [url.split("//", 1)[1] for urls in stack.service_urls.values() for url in urls]


# ------------------------------------------------------------------------ paths and redirects


def test_a_trailing_slash_is_the_canonical_path_not_a_redirect(stack: Stack) -> None:
    with stack.root() as root:
        canonical = root.get("/api/products", params={"limit": 3})
        slashed = root.get("/api/products/", params={"limit": 3})
        assert canonical.status_code == 200, canonical.text
        assert slashed.status_code == 200, slashed.text
        assert slashed.headers["content-type"].startswith("application/json")
        assert "location" not in slashed.headers
        assert slashed.json() == canonical.json()
        every = root.get("/api/products_all/")
        assert every.status_code == 200, every.text
        assert every.json() == root.get("/api/products_all").json()
        doubled = root.get("/api/products//")  # not a route path: the gateway's JSON 404
        assert doubled.status_code == 404 and doubled.json()["code"] == "not_found"
        unknown = root.get("/api/no-such-thing/")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    with stack.client() as anonymous:
        refused = anonymous.get("/api/products/")
        assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
        assert "location" not in refused.headers
    for address in _internal_addresses(stack):
        assert address not in slashed.text and address not in str(slashed.headers)


def test_a_service_redirect_never_names_an_internal_address(
    stack: Stack, probe_gateway: ProbeGateway
) -> None:
    response = httpx.get(
        probe_gateway.url + "/api/all", headers=_root_cookie(stack), follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/api/all/next?page=2"
    assert response.headers["content-location"] == "/api/all"
    internal = probe_gateway.audit.url.split("//", 1)[1]
    assert all(internal not in value for value in response.headers.values())


def test_proxied_answers_have_one_date_and_no_server_header(
    stack: Stack, probe_gateway: ProbeGateway
) -> None:
    with stack.root() as root:
        answers = [root.get("/api/products", params={"limit": 1}), root.get("/api/health")]
    # The fake audit service sends `Server: BaseHTTP/...` and a Date of its own.
    answers.append(
        httpx.get(probe_gateway.url + "/api/all", headers=_root_cookie(stack), timeout=10)
    )
    for response in answers:
        assert len(response.headers.get_list("date")) == 1, response.headers
        assert "server" not in response.headers, response.headers


# --------------------------------------------------------------- operator endpoints and health


def test_metrics_and_readyz_only_on_the_internal_listener(stack: Stack) -> None:
    with stack.root() as root:  # not even root, on the public port
        for path in ("/metrics", "/readyz"):
            response = root.get(path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["code"] == "not_found"
            assert "stockmanager_" not in response.text
        assert root.get("/healthz").status_code == 200
    internal = stack.internal_url
    assert internal and internal != stack.base_url
    assert httpx.get(internal + "/readyz", timeout=5).json()["status"] == "ok"
    metrics = httpx.get(internal + "/metrics", timeout=5)
    assert metrics.status_code == 200 and "stockmanager_http_requests_total" in metrics.text
    # The internal listener is for probes and Prometheus only: no API there.
    assert httpx.get(internal + "/api/health", timeout=5).status_code == 404


def test_anonymous_deep_health_is_only_a_verdict(stack: Stack) -> None:
    with stack.client() as anonymous:
        response = anonymous.get("/api/health", params={"deep": "1"})
    assert response.status_code == 200
    assert response.json() == {"status": "Ok"}
    for address in _internal_addresses(stack):
        assert address not in response.text
    with stack.root() as root:
        detailed = root.get("/api/health", params={"deep": "1"})
    assert detailed.status_code == 200
    assert set(detailed.json()["services"]) == set(stack.service_urls)
    replicas = detailed.json()["services"]["products"]["replicas"]
    assert list(replicas) == stack.service_urls["products"]


def test_anonymous_deep_health_does_not_fan_out_on_each_call(
    stack: Stack, probe_gateway: ProbeGateway
) -> None:
    probes = probe_gateway.audit.probes
    with httpx.Client(base_url=probe_gateway.url, timeout=10) as anonymous:
        answers = [anonymous.get("/api/health", params={"deep": "1"}) for _ in range(20)]
    assert len(probes) == 1, probes  # one check for twenty calls
    assert all(a.status_code == 200 and a.json() == {"status": "Ok"} for a in answers)
    before = len(probes)
    detailed = httpx.get(
        probe_gateway.url + "/api/health",
        params={"deep": "1"},
        headers=_root_cookie(stack),
        timeout=10,
    )
    assert detailed.status_code == 200
    assert detailed.json()["services"]["audit"]["replicas"] == {probe_gateway.audit.url: "ok"}
    assert len(probes) == before + 1  # root always gets a fresh check


# ---------------------------------------------------------------------------- security headers


def _assert_secured(response: httpx.Response) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert len(headers.get_list("content-security-policy")) == 1, where
    assert "frame-ancestors" in headers["content-security-policy"], where
    if headers.get("content-type", "").startswith("application/json"):
        assert headers.get("cache-control") == "no-store", where


def test_every_answer_carries_the_security_headers(stack: Stack) -> None:
    with stack.client() as anonymous:
        answers = [
            anonymous.get("/api/products"),  # 401
            anonymous.get("/api/health"),
            anonymous.get("/api/nope"),  # 404
            anonymous.get("/healthz"),
            anonymous.post("/api/login", json={"username": "", "password": ""}),  # 400
        ]
        docs = anonymous.get("/api/docs")
    with stack.root() as root:
        answers += [
            root.get("/api/session"),
            root.get("/api/products", params={"limit": 1}),  # proxied
            root.get("/api/users", params={"limit": 1}),
        ]
    for response in [*answers, docs]:
        _assert_secured(response)
        assert "strict-transport-security" not in response.headers  # cookies are not Secure
    for response in answers:
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["cache-control"] == "no-store"
    # The documentation page keeps its own, stricter policy.
    assert docs.status_code == 200
    assert "default-src 'self'" in docs.headers["content-security-policy"]


def test_hsts_when_the_session_cookie_is_secure(probe_gateway: ProbeGateway) -> None:
    with httpx.Client(base_url=probe_gateway.url, timeout=10) as client:
        for response in (client.get("/api/health"), client.get("/api/products")):
            _assert_secured(response)
            hsts = response.headers.get("strict-transport-security", "")
            assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) > 0
