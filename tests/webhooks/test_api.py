"""The subscription API: access, validation, the SSRF refusal under the default settings,
audit records of every change."""

from __future__ import annotations

import httpx

from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.webhooks.support import deliveries, subscribe


def test_loopback_and_private_targets_are_refused_by_default(stack: Stack) -> None:
    root = stack.root()
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ):
        refused = root.post("/api/webhooks", json={"url": url, "events": ["sale.created"]})
        assert refused.status_code == 400, (url, refused.text)
        assert refused.json()["code"] == "validation_error"
        assert refused.json()["field"] == "url"
    assert root.get("/api/webhooks").json()["total"] == 0


def test_bodies_are_validated(hooks_stack: Stack) -> None:
    root = hooks_stack.root()
    cases = [
        {"url": "ftp://example.com/x", "events": ["sale.created"]},
        {"url": "http://user:pw@example.com/x", "events": ["sale.created"]},
        {"url": "https://example.com/x", "events": []},
        {"url": "https://example.com/x", "events": ["auth.login"]},
        {"url": "https://example.com/x", "events": ["*", "sale.created"]},
        {"url": "https://example.com/x", "events": "sale.created"},
        {"url": "https://example.com/x", "events": ["sale.created"], "active": "yes"},
        {"events": ["sale.created"]},
    ]
    for body in cases:
        refused = root.post("/api/webhooks", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert set(refused.json()) >= {"error", "code"}
    not_an_object = root.post(
        "/api/webhooks", content=b"[1]", headers={"content-type": "application/json"}
    )
    assert not_an_object.status_code == 400
    assert root.get("/api/webhooks/999999999").status_code == 404
    assert root.put("/api/webhooks/999999999", json={"active": False}).status_code == 404
    assert root.get("/api/webhooks/1/deliveries", params={"status": "odd"}).status_code in (
        400,
        404,
    )


def test_only_admins_and_root(hooks_stack: Stack) -> None:
    anonymous = httpx.Client(base_url=hooks_stack.base_url)
    assert anonymous.get("/api/webhooks").status_code == 401
    root = hooks_stack.root()
    from tests.support.stack import unique

    name = unique("wv")
    made = root.post(
        "/api/users",
        json={
            "username": name,
            "email": f"{name}@x.test",
            "password": "pass-12345",
            "role": "vendedor",
        },
    )
    assert made.status_code == 201, made.text
    seller = hooks_stack.login(name, "pass-12345")
    assert seller.get("/api/webhooks").status_code == 403
    assert (
        seller.post(
            "/api/webhooks", json={"url": "https://example.com/x", "events": ["*"]}
        ).status_code
        == 403
    )


def test_changes_are_audited_and_redelivery_requeues(hooks_stack: Stack) -> None:
    root = hooks_stack.root()
    created = subscribe(root, "http://127.0.0.1:9/never", ["product.created"])
    webhook_id = created["id"]
    changed = root.put(f"/api/webhooks/{webhook_id}", json={"events": ["*"], "description": "todo"})
    assert changed.status_code == 200 and changed.json()["events"] == ["*"]
    assert root.post(f"/api/webhooks/{webhook_id}/rotate-secret").status_code == 200
    assert root.put(f"/api/webhooks/{webhook_id}", json={"active": False}).status_code == 200
    assert root.post(f"/api/webhooks/{webhook_id}/test").status_code == 409  # inactive
    assert root.put(f"/api/webhooks/{webhook_id}", json={"active": True}).status_code == 200
    queued = root.post(f"/api/webhooks/{webhook_id}/test")
    assert queued.status_code == 202
    delivery_id = queued.json()["delivery_id"]
    eventually(
        lambda: any(d["attempts"] >= 1 for d in deliveries(root, webhook_id)),
        timeout=30,
        what="an attempt",
    )
    again = root.post(f"/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
    assert again.status_code == 202 and again.json()["delivery_id"] == delivery_id
    assert root.post(f"/api/webhooks/{webhook_id}/deliveries/999999/redeliver").status_code == 404
    assert len(deliveries(root, webhook_id, event_type="webhook.ping")) == 1
    assert deliveries(root, webhook_id, event_type="sale.created") == []
    assert root.delete(f"/api/webhooks/{webhook_id}").status_code == 200
    assert root.get(f"/api/webhooks/{webhook_id}").status_code == 404

    def audited() -> bool:
        trail = root.get(f"/api/entity/webhook/{webhook_id}").json()
        # Refused requests (the 409 and 404 above) are in the trail too, as the gateway's own.
        actions = [c["action"] for c in trail.get("changes", [])]
        wanted = {"create": 1, "update": 3, "rotate_secret": 1, "delete": 1}
        return all(actions.count(action) == n for action, n in wanted.items())

    eventually(audited, timeout=30, what="one audit record per change")
    trail = root.get(f"/api/entity/webhook/{webhook_id}").json()
    assert all(created["secret"] not in str(change) for change in trail["changes"])
