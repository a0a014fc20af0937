"""Deliveries through the whole system: real events from the gateway, real local receivers that
verify every signature with the Standard Webhooks library."""

from __future__ import annotations

import psycopg
from redis import Redis as SyncRedis

from stockmanager.settings import KernelSettings
from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.webhooks.receiver import receiving
from tests.webhooks.support import (
    clear_subscriptions,
    create_product,
    deliveries,
    sell,
    subscribe,
)

EVENT_STREAM = KernelSettings.model_fields["event_stream"].default


def test_every_subscribed_type_arrives_once_and_unsubscribed_types_never(
    hooks_stack: Stack,
) -> None:
    root = hooks_stack.root()
    with receiving() as sales_hook, receiving() as updates_hook:
        wants_sales = subscribe(root, sales_hook.url, ["sale.created", "product.created"])
        wants_updates = subscribe(root, updates_hook.url, ["product.updated"])
        sales_hook.secret, updates_hook.secret = wants_sales["secret"], wants_updates["secret"]

        product_id = create_product(root)
        sale_ids = {sell(root, product_id) for _ in range(3)}
        changed = root.put(f"/api/products/{product_id}", json={"price": 7.25})
        assert changed.status_code == 200, changed.text

        eventually(
            lambda: (
                len(sales_hook.of_type("sale.created")) >= 3
                and len(updates_hook.of_type("product.updated")) >= 1
            ),
            timeout=30,
            what="the deliveries",
        )
        # A later event, delivered after everything above: nothing more is coming for those.
        marker = sell(root, product_id)
        eventually(
            lambda: any(
                r.body["data"]["sale_id"] == marker
                for r in sales_hook.snapshot()
                if r.body["type"] == "sale.created"
            ),
            timeout=30,
            what="the marker sale",
        )

    got = [r for r in sales_hook.snapshot() if r.body["type"] != "webhook.ping"]
    assert all(r.verified and r.signatures == 1 for r in got)
    assert all(r.webhook_id == r.body["id"] for r in got)
    ids = [r.webhook_id for r in got]
    assert len(ids) == len(set(ids)), "each event once"
    created = [r.body for r in got if r.body["type"] == "product.created"]
    assert [b["data"]["product"]["id"] for b in created] == [product_id]
    sold = {r.body["data"]["sale_id"] for r in got if r.body["type"] == "sale.created"}
    assert sold == sale_ids | {marker}
    assert {r.body["type"] for r in got} == {"sale.created", "product.created"}
    body = next(r.body for r in got if r.body["type"] == "sale.created")
    assert body["version"] == 1 and body["entity"] == {
        "type": "sale",
        "id": body["data"]["sale_id"],
    }
    assert set(body) >= {"version", "id", "type", "time", "entity", "actor", "data"}

    updates = updates_hook.snapshot()
    assert [r.body["type"] for r in updates] == ["product.updated"]
    assert updates[0].verified
    assert updates[0].body["before"]["price"] == 5.5 and updates[0].body["after"]["price"] == 7.25

    log = deliveries(root, wants_sales["id"], status="succeeded")
    assert len(log) == 5 and all(d["attempts"] == 1 and d["response_status"] == 200 for d in log)
    assert all(d["latency_ms"] is not None and d["next_attempt_at"] is None for d in log)


def test_ping_rotation_and_the_grace_period(hooks_stack: Stack) -> None:
    root = hooks_stack.root()
    with receiving() as hook:
        created = subscribe(root, hook.url, ["*"])
        hook.secret = created["secret"]
        ping = root.post(f"/api/webhooks/{created['id']}/test")
        assert ping.status_code == 202, ping.text
        eventually(lambda: len(hook.of_type("webhook.ping")) == 1, timeout=30, what="the ping")
        assert hook.of_type("webhook.ping")[0].verified

        rotated = root.post(f"/api/webhooks/{created['id']}/rotate-secret", json={})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["secret"] != created["secret"]
        assert rotated.json()["previous_secret_expires_at"] is not None
        # A receiver still on the old secret verifies (two signatures, one is the old one).
        assert root.post(f"/api/webhooks/{created['id']}/test").status_code == 202
        eventually(lambda: len(hook.of_type("webhook.ping")) == 2, timeout=30, what="ping 2")
        second = hook.of_type("webhook.ping")[1]
        assert second.verified and second.signatures == 2

        # Switched to the new secret, with the grace period ended at once.
        hook.secret = rotated.json()["secret"]
        ended = root.post(f"/api/webhooks/{created['id']}/rotate-secret", json={"grace_seconds": 0})
        assert ended.status_code == 200 and ended.json()["previous_secret_expires_at"] is None
        hook.secret = ended.json()["secret"]
        assert root.post(f"/api/webhooks/{created['id']}/test").status_code == 202
        eventually(lambda: len(hook.of_type("webhook.ping")) == 3, timeout=30, what="ping 3")
        third = hook.of_type("webhook.ping")[2]
        assert third.verified and third.signatures == 1

    # The secret is never shown again.
    shown = root.get(f"/api/webhooks/{created['id']}").json()
    assert "secret" not in shown and created["secret"] not in str(shown)
    listed = root.get("/api/webhooks").json()
    assert all("secret" not in item for item in listed["data"])


def test_events_no_subscription_wants_are_acknowledged_without_a_write(
    hooks_stack: Stack,
) -> None:
    # Most shops have no webhooks: the consumer must not spend a transaction per batch on
    # events nobody wants (it did: 0.2-0.45 ms of CPU per sale, bench/results/sales.md).
    root = hooks_stack.root()
    clear_subscriptions(root)
    with receiving() as hook:
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        product_id = create_product(root)  # product.created: deliverable, but unwanted
        sale_id = sell(root, product_id)
        eventually(
            lambda: any(r.body["data"]["sale_id"] == sale_id for r in hook.of_type("sale.created")),
            timeout=30,
            what="the sale's delivery",
        )
    (sale_event,) = [
        r.webhook_id for r in hook.of_type("sale.created") if r.body["data"]["sale_id"] == sale_id
    ]
    with psycopg.connect(hooks_stack.env["DATABASE_URL"]) as conn:
        product_created = conn.execute(
            "SELECT id FROM products.outbox WHERE type = 'product.created'"
            " AND payload->'entity'->>'id' = %s",
            (str(product_id),),
        ).fetchone()
        assert product_created is not None

        def consumed() -> bool:
            # The product.created entry precedes the sale's in the stream: once the sale was
            # delivered it was read too; wait until its acknowledgement is done.
            with SyncRedis.from_url(hooks_stack.env["REDIS_URL"]) as redis:
                return redis.xpending(EVENT_STREAM, "webhooks")["pending"] == 0

        eventually(consumed, timeout=30, what="the webhooks group's acknowledgements")
        recorded = {
            str(row[0])
            for row in conn.execute(
                "SELECT event_id FROM webhooks.processed_events WHERE event_id = ANY(%s)",
                ([str(product_created[0]), sale_event],),
            )
        }
    assert recorded == {sale_event}
