"""Receivers that are down, hang or keep failing, and a delivering process killed mid-batch."""

from __future__ import annotations

from typing import Any

from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.webhooks.receiver import Receiver, receiving
from tests.webhooks.support import (
    clear_subscriptions,
    create_product,
    deliveries,
    sell,
    service_metric,
    subscribe,
    webhook,
)


def _sale_ids(hook: Receiver) -> set[int]:
    return {r.body["data"]["sale_id"] for r in hook.of_type("sale.created")}


def _log_statuses(root: Any, webhook_id: int, hook: Receiver, sold: set[int]) -> set[str]:
    """Statuses of the deliveries of the sales `sold` (under load the consumer may still fan
    out an earlier test's events to this subscription: those are not this test's business)."""
    ours = {r.webhook_id for r in hook.of_type("sale.created") if r.body["data"]["sale_id"] in sold}
    return {d["status"] for d in deliveries(root, webhook_id) if d["event_id"] in ours}


def _timed_out(root: Any, webhook_id: int) -> bool:
    return any("timeout" in (d["last_error"] or "") for d in deliveries(root, webhook_id))


def test_a_receiver_down_for_a_while_gets_everything_once_back(hooks_stack: Stack) -> None:
    root = hooks_stack.root()
    clear_subscriptions(root)
    product_id = create_product(root)
    with receiving(listening=False) as hook:  # nothing listens on its port yet
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        sold = {sell(root, product_id) for _ in range(2)}

        def retried() -> bool:
            log = deliveries(root, created["id"])
            return len(log) >= 2 and all(
                d["attempts"] >= 2 and d["status"] == "pending" and d["last_error"] for d in log
            )

        eventually(retried, timeout=90, what="failed attempts while the receiver is down")
        hook.start()
        eventually(lambda: _sale_ids(hook) == sold, timeout=90, what="the deliveries")

    assert all(r.verified for r in hook.snapshot())
    eventually(
        lambda: _log_statuses(root, created["id"], hook, sold) == {"succeeded"},
        timeout=90,
        what="the log",
    )
    log = deliveries(root, created["id"])
    assert all(d["attempts"] >= 2 and d["response_status"] == 200 for d in log)
    assert webhook(root, created["id"])["consecutive_failures"] == 0


def test_a_hanging_receiver_times_out_and_never_delays_the_others(hooks_stack: Stack) -> None:
    root = hooks_stack.root()
    clear_subscriptions(root)
    product_id = create_product(root)
    with receiving("hang") as slow, receiving() as fast:
        slow_sub = subscribe(root, slow.url, ["sale.created"])
        fast_sub = subscribe(root, fast.url, ["sale.created"])
        slow.secret, fast.secret = slow_sub["secret"], fast_sub["secret"]
        sold = {sell(root, product_id) for _ in range(8)}

        eventually(lambda: _sale_ids(fast) == sold, timeout=90, what="the fast receiver")
        # Every one of them arrived while the slow receiver still held its requests.
        assert slow.snapshot() == []

        eventually(lambda: _timed_out(root, slow_sub["id"]), timeout=90, what="a timed-out attempt")
        slow.release()
        eventually(lambda: _sale_ids(slow) >= sold, timeout=90, what="the slow receiver")
        # Still listening: a released request the worker had already given up on is recorded
        # here too, so the receiver stays up until the retries of the timed-out attempts landed.
        eventually(
            lambda: (
                _log_statuses(root, fast_sub["id"], fast, sold) == {"succeeded"}
                and _log_statuses(root, slow_sub["id"], slow, sold) == {"succeeded"}
            ),
            timeout=90,
            what="the logs",
        )

    assert all(r.verified for r in slow.snapshot() + fast.snapshot())
    assert max(d["attempts"] for d in deliveries(root, slow_sub["id"])) >= 2


def test_deliveries_claimed_ahead_behind_a_hanging_receiver_are_given_back_not_sent_late(
    hooks_stack: Stack,
) -> None:
    # 20 sales made while the webhooks process is down, so that its first round claims them
    # together: 8 attempts in flight (the per-subscription cap), 12 claimed ahead and queued in
    # the worker. When the 8 time out (1 s), the queued ones' leases (timeout + 1 s margin,
    # counted from the claim) could end before an attempt would: they are given back to the
    # database (their claim uncounted) and claimed again, never sent on an expiring lease.
    # (The log's attempts are not compared with the receiver's count: a request the client
    # gave up on can be reset before this receiver reads it.)
    root = hooks_stack.root()
    clear_subscriptions(root)
    product_id = create_product(root)
    with receiving("hang") as hook:
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        hooks_stack.supervisor.kill("webhooks")
        sold = {sell(root, product_id) for _ in range(20)}
        hooks_stack.supervisor.restart("webhooks")
        hooks_stack.supervisor.wait_ready(timeout=90, names=["webhooks"])

        eventually(lambda: _timed_out(root, created["id"]), timeout=90, what="a timed-out attempt")
        hook.release()
        eventually(lambda: _sale_ids(hook) >= sold, timeout=90, what="every sale")
        eventually(
            lambda: _log_statuses(root, created["id"], hook, sold) == {"succeeded"},
            timeout=90,
            what="the log",
        )

    assert all(r.verified for r in hook.snapshot())
    assert max(d["attempts"] for d in deliveries(root, created["id"])) >= 2  # retried
    given_back = service_metric(hooks_stack, "stockmanager_webhook_claims_given_back_total")
    assert given_back > 0  # counted since the restart


def test_the_delivering_process_killed_mid_batch_loses_nothing(hooks_stack: Stack) -> None:
    root = hooks_stack.root()
    clear_subscriptions(root)
    product_id = create_product(root)
    with receiving("hang") as hook:
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        sold = {sell(root, product_id) for _ in range(10)}
        eventually(lambda: hook.hits >= 4, timeout=90, what="attempts in flight")

        hooks_stack.supervisor.kill("webhooks")  # SIGKILL: leases held, nothing recorded
        sold |= {sell(root, product_id) for _ in range(5)}  # published while it is down
        hook.release()
        hooks_stack.supervisor.restart("webhooks")
        hooks_stack.supervisor.wait_ready(timeout=90, names=["webhooks"])

        eventually(lambda: _sale_ids(hook) >= sold, timeout=120, what="every sale")
        # Still listening: the requests the killed process held arrived when released, but its
        # leases were never recorded, so the restarted worker sends them again once they expire;
        # the receiver stays up until the log says every delivery succeeded.
        eventually(
            lambda: _log_statuses(root, created["id"], hook, sold) == {"succeeded"},
            timeout=90,
            what="the log",
        )

    assert all(r.verified for r in hook.snapshot())


def test_a_failing_subscription_is_disabled_and_the_admins_told(disabling_stack: Stack) -> None:
    root = disabling_stack.root()
    clear_subscriptions(root)
    product_id = create_product(root)
    with receiving("fail") as hook:
        created = subscribe(root, hook.url, ["sale.created"], description="ERP")
        hook.secret = created["secret"]
        sold = {sell(root, product_id) for _ in range(3)}

        eventually(
            lambda: not webhook(root, created["id"])["active"], timeout=90, what="auto-disable"
        )
        disabled = webhook(root, created["id"])
        assert disabled["consecutive_failures"] >= 6 and "HTTP 500" in disabled["disabled_reason"]

        def notified() -> bool:
            mine = root.get("/api/notifications/all", params={"limit": 50}).json()
            return any(
                n["title"] == "Webhook desactivado" and f"#{created['id']}" in n["message"]
                for n in mine
            )

        eventually(notified, timeout=90, what="the admin notification")

        def audited() -> bool:
            trail = root.get(f"/api/entity/webhook/{created['id']}")
            actions = [c["action"] for c in trail.json().get("changes", [])]
            return "create" in actions and "disable" in actions

        eventually(audited, timeout=90, what="the audit records")

        # Back on: the receiver works again, the deliveries still pending go out.
        hook.mode = "ok"
        enabled = root.put(f"/api/webhooks/{created['id']}", json={"active": True})
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["consecutive_failures"] == 0
        eventually(lambda: _sale_ids(hook) == sold, timeout=90, what="delivery after re-enable")
    assert all(r.verified for r in hook.snapshot())
