"""Deliveries the consumer writes already leased to its own process's worker (no claim): the
ones it has no room for wait for a claim, and a process killed after writing them, before
sending, loses none."""

from __future__ import annotations

from pathlib import Path

from tests.support.waiting import eventually
from tests.webhooks.conftest import WEBHOOK_ENV, webhooks_stack
from tests.webhooks.receiver import receiving
from tests.webhooks.support import create_product, deliveries, sell, service_metric, subscribe

# Room for 3 deliveries per subscription (2 in flight, 1 queued behind them); leases of 20 s,
# so nothing times out or is given back while the test looks.
HANDOVER_ENV = {
    **WEBHOOK_ENV,
    "STOCKMANAGER_WEBHOOKS_TIMEOUT_SECONDS": "10",
    "STOCKMANAGER_WEBHOOKS_LEASE_MARGIN_SECONDS": "10",
    "STOCKMANAGER_WEBHOOKS_MAX_IN_FLIGHT_PER_SUBSCRIPTION": "2",
    "STOCKMANAGER_WEBHOOKS_CLAIM_AHEAD_PER_SUBSCRIPTION": "1",
}
HANDED_OVER = "stockmanager_webhook_deliveries_handed_over_total"


def test_deliveries_handed_over_and_never_sent_are_delivered_after_a_crash(
    migrated: str, data_root: Path
) -> None:
    with (
        webhooks_stack(migrated, data_root, "webhooks_handover", HANDOVER_ENV) as stack,
        receiving("hang") as hook,
    ):
        root = stack.root()
        product_id = create_product(root)
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        sold = {sell(root, product_id) for _ in range(5)}

        # The first 3 were written leased to the worker (their attempt counted at once) and
        # handed to it: 2 sent (hanging), 1 queued behind them. The last 2 were written due,
        # for a claim, which finds no room for them.
        eventually(
            lambda: hook.hits == 2 and len(deliveries(root, created["id"])) == 5,
            timeout=30,
            what="two attempts in flight and five deliveries written",
        )
        eventually(lambda: service_metric(stack, HANDED_OVER) == 3, timeout=30, what="the handover")
        assert sorted(d["attempts"] for d in deliveries(root, created["id"])) == [0, 0, 1, 1, 1]

        stack.supervisor.kill("webhooks")  # SIGKILL: the queued one was leased, never sent
        assert hook.hits == 2
        hook.release()
        stack.supervisor.restart("webhooks")
        stack.supervisor.wait_ready(timeout=90, names=["webhooks"])

        def arrived() -> set[int]:
            return {r.body["data"]["sale_id"] for r in hook.of_type("sale.created")}

        # The 2 due ones are claimed at once; the 3 leased ones once their leases end.
        eventually(lambda: arrived() >= sold, timeout=90, what="every sale")
        eventually(
            lambda: {d["status"] for d in deliveries(root, created["id"])} == {"succeeded"},
            timeout=90,
            what="the log",
        )
    assert all(r.verified for r in hook.snapshot())
