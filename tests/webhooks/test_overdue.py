"""The overdue gauge operators alert on: deliveries due for over a minute that no worker holds."""

from __future__ import annotations

import psycopg

from services.webhooks.settings import WebhooksSettings
from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.webhooks.receiver import receiving
from tests.webhooks.support import clear_subscriptions, service_metric, subscribe

BACKLOG = 100
# What the worker holds of one subscription's deliveries at most: in flight + claimed ahead.
HELD = sum(
    WebhooksSettings.model_fields[name].default
    for name in (
        "webhooks_max_in_flight_per_subscription",
        "webhooks_claim_ahead_per_subscription",
    )
)


def overdue(stack: Stack) -> float:
    return service_metric(stack, "stockmanager_webhook_deliveries_overdue")


def test_deliveries_waiting_unclaimed_past_due_are_counted_until_sent(
    hooks_stack: Stack,
) -> None:
    root = hooks_stack.root()
    clear_subscriptions(root)
    with receiving("hang") as hook:
        created = subscribe(root, hook.url, ["sale.created"])
        hook.secret = created["secret"]
        # A backlog two minutes late, as after an outage of every webhooks process. The worker
        # holds at most HELD (64) of one subscription's deliveries at a time and this receiver
        # holds each attempt for the whole 1 s timeout: the rest stay unclaimed.
        with psycopg.connect(hooks_stack.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(
                """
                WITH e AS (
                    SELECT n, gen_random_uuid() AS id FROM generate_series(1, %(n)s) n
                ), bodies AS (
                    INSERT INTO webhooks.payloads (event_id, body)
                    SELECT e.id, json_build_object(
                               'version', 1, 'id', e.id, 'type', 'sale.created',
                               'data', json_build_object('sale_id', -e.n))
                      FROM e
                )
                INSERT INTO webhooks.deliveries
                    (subscription_id, event_id, event_type, next_attempt_at, retry_until)
                SELECT %(id)s, e.id, 'sale.created',
                       now() - interval '2 minutes', now() + interval '1 day'
                  FROM e
                """,
                {"id": created["id"], "n": BACKLOG},
            )
        eventually(lambda: overdue(hooks_stack) >= BACKLOG - HELD, timeout=10, what="the gauge")
        hook.release()
        eventually(lambda: overdue(hooks_stack) == 0, timeout=60, what="the backlog sent")
        eventually(
            lambda: len(hook.of_type("sale.created")) >= BACKLOG, timeout=60, what="arrivals"
        )
