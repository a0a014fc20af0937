"""Operations through the gateway: debug endpoints, central logs, deep health, metrics."""

from __future__ import annotations

import time

import httpx
import orjson
from redis import Redis as SyncRedis

from tests.support.factories import create_user_row
from tests.support.stack import Stack, unique


def poll(check, within: float = 5.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def test_debug_command_never_runs_code(stack: Stack) -> None:
    with stack.root() as root:
        response = root.post("/api/debug/command", json={"code": "print(1)"})
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "validation_error"
        assert set(body["allowed"]) >= {"health", "queues", "versions"}
        for name in body["allowed"]:
            assert name in body["error"]
        assert root.post("/api/debug/command", json={"command": "exec"}).status_code == 400


def test_debug_queues_reports_real_consumer_groups(stack: Stack) -> None:
    with stack.root() as root:
        response = root.post("/api/debug/command", json={"command": "queues"})
    assert response.status_code == 200
    output = response.json()["output"]
    assert output["stream_length"] >= 1  # at least the login event we just caused
    assert "gateway" in output["groups"]
    for values in output["groups"].values():
        assert isinstance(values["pending"], int) and isinstance(values["lag"], int)
        assert values["pending"] >= 0 and values["lag"] >= 0
    assert isinstance(output["dead_letters"], int)


def test_debug_is_root_only(stack: Stack, migrated: str) -> None:
    for role in ("admin", "vendedor"):
        name = unique(role[:3])
        create_user_row(migrated, name, "secret-pw", role)
        with stack.login(name, "secret-pw") as client:
            for method, path, body in (
                ("POST", "/api/debug/command", {"command": "queues"}),
                ("GET", "/api/debug/logs", None),
                ("POST", "/api/debug/log", {"message": "x"}),
            ):
                response = client.request(method, path, json=body)
                assert response.status_code == 403, (role, path)
                assert response.json()["error"] == "Permiso denegado"
    with stack.client() as anonymous:
        assert anonymous.get("/api/debug/logs").status_code == 401


def test_central_logs_hold_lines_from_several_processes(stack: Stack) -> None:
    marker = unique("marker-")
    installed = set(stack.service_urls)
    probes = {
        "products": "/api/products",
        "sales": "/api/sales",
        "users": "/api/users",
        "metrics": "/api/stats",
        "notifications": "/api/notifications/unread",
        "audit": "/api/all",
        "webhooks": "/api/webhooks",
    }
    expected = {"gateway"} | installed
    with stack.root() as root:
        assert root.post(
            "/api/debug/log", json={"level": "warning", "message": marker, "context": {"a": 1}}
        ).json() == {"status": "logged"}
        for service in installed:
            root.get(probes[service])

        def processes_seen() -> set[str] | None:
            logs = root.get("/api/debug/logs").json()["logs"]
            assert len(logs) <= 100
            assert all(line.endswith("\n") for line in logs)
            seen = {orjson.loads(line)["process"] for line in logs}
            has_marker = any(marker in line for line in logs)
            return seen if has_marker and seen >= expected else None

        seen = poll(processes_seen, within=5)
    assert seen, "central log did not show the marker and every process"
    assert len(seen) >= min(3, len(expected))


def test_deep_health_names_a_stopped_service(stack: Stack) -> None:
    victim = (
        "sales"
        if "sales" in stack.service_urls
        else next(name for name in stack.service_urls if name != "users")
    )
    # The details are root's (anyone else gets the verdict only); root's check is never cached.
    with stack.root() as client:
        healthy = client.get("/api/health", params={"deep": "1"})
        assert healthy.status_code == 200, healthy.text
        report = healthy.json()
        assert report["status"] == "Ok" and report["postgres"] == "ok" and report["redis"] == "ok"
        assert "gateway" in report["events"]["groups"]
        stack.supervisor.kill(victim)
        try:
            degraded = client.get("/api/health", params={"deep": "1"})
            assert degraded.status_code == 503
            assert victim in degraded.json()["down"]
            assert degraded.json()["services"][victim]["status"] == "down"
            assert client.get("/api/health").json() == {"status": "Ok"}
        finally:
            stack.supervisor.restart(victim)
            stack.supervisor.wait_ready(timeout=60, names=[victim])
        assert client.get("/api/health", params={"deep": "1"}).status_code == 200


def test_every_process_exposes_prometheus_metrics(stack: Stack) -> None:
    with stack.root() as root:
        root.get("/api/session")
        # Not on the public listener: only on the gateway's internal one, for operators.
        assert root.get("/metrics").status_code == 404
        gateway_metrics = httpx.get(stack.internal_url + "/metrics", timeout=5)
    assert gateway_metrics.status_code == 200
    text = gateway_metrics.text
    assert (
        'stockmanager_http_requests_total{method="GET",route="/api/session",status="200"}' in text
    )
    assert "stockmanager_event_consumer_lag" in text
    # Events the consumers gave up on (deploy/k8s/components/monitoring alerts on any): the
    # gateway reports the dead-letter stream's length, read at scrape time.
    dead_stream = "stockmanager:events:dead"
    with SyncRedis.from_url(stack.env["REDIS_URL"]) as redis:
        entry = redis.xadd(dead_stream, {"event": "{}", "group": "test", "original_id": "0-1"})
        try:
            expected = redis.xlen(dead_stream)
            scraped = httpx.get(stack.internal_url + "/metrics", timeout=5).text
        finally:
            redis.xdel(dead_stream, entry)
    assert f"stockmanager_event_dead_letters {float(expected)}\n" in scraped
    for urls in stack.service_urls.values():
        for url in urls:
            response = httpx.get(url + "/metrics", timeout=5)
            assert response.status_code == 200
            assert "stockmanager_db_pool_size" in response.text
            assert httpx.get(url + "/healthz", timeout=5).status_code == 200
            assert httpx.get(url + "/readyz", timeout=5).json()["checks"] == {
                "postgres": "ok",
                "redis": "ok",
            }
