"""The delivery log's retention: finished deliveries leave it, pending ones never do."""

from __future__ import annotations

import psycopg

from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.webhooks.receiver import receiving
from tests.webhooks.support import create_product, deliveries, sell, subscribe


def test_finished_deliveries_leave_the_log_after_the_retention_and_pending_ones_stay(
    pruning_stack: Stack,
) -> None:
    root = pruning_stack.root()
    product_id = create_product(root)
    with receiving() as up, receiving(listening=False) as down:
        delivered = subscribe(root, up.url, ["sale.created"])
        failing = subscribe(root, down.url, ["sale.created"])
        up.secret = delivered["secret"]
        sold = {sell(root, product_id) for _ in range(3)}
        eventually(
            lambda: {r.body["data"]["sale_id"] for r in up.of_type("sale.created")} >= sold,
            timeout=30,
            what="the deliveries",
        )
        # Retention is one second here: the delivered ones go, whole, from the log...
        eventually(
            lambda: deliveries(root, delivered["id"]) == [], timeout=30, what="the log's cleanup"
        )
        # ...while those still being retried stay: they were created by the same statement
        # as the ones just deleted, so the cleanup found them just as old.
        waiting = deliveries(root, failing["id"])
        assert len(waiting) == 3
        assert {d["status"] for d in waiting} == {"pending"}

    # The events' bodies, stored once for both subscriptions, stay while a delivery refers to
    # them, and go with the last one (here with its subscription).
    events = [r.webhook_id for r in up.of_type("sale.created") if r.body["data"]["sale_id"] in sold]
    assert len(events) == 3
    assert stored_bodies(pruning_stack, events) == 3
    assert root.delete(f"/api/webhooks/{failing['id']}").status_code == 200
    eventually(
        lambda: stored_bodies(pruning_stack, events) == 0, timeout=30, what="the bodies' cleanup"
    )


def stored_bodies(stack: Stack, event_ids: list[str]) -> int:
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhooks.payloads WHERE event_id = ANY(%s::uuid[])", (event_ids,)
        ).fetchone()
    assert row is not None
    return int(row[0])
