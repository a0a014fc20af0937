"""Two webhooks processes on one database: they share the deliveries (claims are leased with
`FOR UPDATE SKIP LOCKED`, each claiming ahead of its free slots) and never send one twice."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.webhooks.conftest import WEBHOOK_ENV, webhooks_stack
from tests.webhooks.receiver import receiving
from tests.webhooks.support import create_product, sell, subscribe

# Leases as in production (timeout 10 s + 20 s): within this test a lease never ends, so any
# delivery sent twice would be two processes holding the same claim.
REPLICA_ENV = {
    **WEBHOOK_ENV,
    "STOCKMANAGER_WEBHOOKS_TIMEOUT_SECONDS": "10",
    "STOCKMANAGER_WEBHOOKS_LEASE_MARGIN_SECONDS": "20",
}
SELLERS = 4
SALES_EACH = 30


def _log(root: Any, webhook_id: int) -> list[dict[str, Any]]:
    """The whole delivery log (pages of 100)."""
    found: list[dict[str, Any]] = []
    for page in range(1, 20):
        response = root.get(
            f"/api/webhooks/{webhook_id}/deliveries", params={"limit": 100, "page": page}
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        found += data
        if len(data) < 100:
            return found
    raise AssertionError("more pages than this test makes deliveries")


def test_two_webhooks_processes_deliver_every_event_once(migrated: str, data_root: Path) -> None:
    with (
        webhooks_stack(migrated, data_root, "webhooks_replicas", REPLICA_ENV, replicas=2) as stack,
        receiving() as first,
        receiving() as second,
    ):
        _deliver_racing_sales(stack, first, second)


def _deliver_racing_sales(stack: Stack, *hooks: Any) -> None:
    root = stack.root()
    product_id = create_product(root, stock=SELLERS * SALES_EACH)
    subscriptions = []
    for hook in hooks:
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        subscriptions.append(created)

    def seller(_: int) -> list[int]:
        with stack.root() as client:
            return [sell(client, product_id) for _ in range(SALES_EACH)]

    with ThreadPoolExecutor(SELLERS) as pool:
        sold = {sale for batch in pool.map(seller, range(SELLERS)) for sale in batch}
    assert len(sold) == SELLERS * SALES_EACH

    def arrived(hook: Any) -> Counter[int]:
        return Counter(r.body["data"]["sale_id"] for r in hook.of_type("sale.created"))

    for hook in hooks:
        eventually(lambda hook=hook: set(arrived(hook)) >= sold, timeout=60, what="every sale")
    for hook, created in zip(hooks, subscriptions, strict=True):
        eventually(
            lambda created=created: (
                {d["status"] for d in _log(root, created["id"])} == {"succeeded"}
            ),
            timeout=30,
            what="the log",
        )
        counts = arrived(hook)
        assert {sale: counts[sale] for sale in sold} == dict.fromkeys(sold, 1)  # once each
        assert all(r.verified for r in hook.snapshot())
        log = _log(root, created["id"])
        assert len(log) == len(sold) and all(d["attempts"] == 1 for d in log)
