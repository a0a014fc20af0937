"""The delivery log's retention: finished deliveries leave it, pending ones never do."""

from __future__ import annotations

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
