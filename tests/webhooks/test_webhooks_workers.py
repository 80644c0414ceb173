"""Webhook deliveries with real `qcluster` workers on PostgreSQL, to a real receiver that
verifies each request with Stripe's own `stripe.Webhook.construct_event`.

Each test commits its data (`transactional_db`), starts its clusters against the test
database, waits with a bound, and stops every process it started (also on failure). The sweep
runs every minute in production; here the test calls it in a loop, as the engine's worker
tests do.
"""

from __future__ import annotations

import time

import pytest

from billing.models import Event
from tests import factories
from tests.webhook_receiver import HOLD
from tests.workers import qclusters, wait_for
from webhooks import services
from webhooks.models import WebhookDelivery
from webhooks.sweep import webhook_sweep

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

# What the workers run with: 127.0.0.1 allowed, retries a fraction of a second apart.
ENV = {
    "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
    "BILLFLOW_WEBHOOK_TIMEOUT_SECONDS": "5",
    "BILLFLOW_WEBHOOK_LEASE_SECONDS": "10",
    "BILLFLOW_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "BILLFLOW_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
}


def _endpoint(live, receiver):
    endpoint = services.webhook_endpoint_create(
        environment=live, url=receiver.url(), enabled_events=["customer.created"]
    )
    receiver.secret = endpoint.secret
    return endpoint


def _sweep_until_succeeded(count: int, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while WebhookDelivery.objects.filter(status="succeeded").count() < count:
        if time.monotonic() > deadline:
            states = list(WebhookDelivery.objects.values_list("pk", "status", "attempts"))
            raise AssertionError(f"deliveries not all succeeded after {timeout}s: {states}")
        webhook_sweep()
        time.sleep(0.2)


def _nothing_more_is_sent(receiver, seconds: float = 1.5) -> None:
    """Whatever hands the deliveries out again now (the sweep, a stale message) sends nothing."""
    before = len(receiver.requests())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        webhook_sweep()
        time.sleep(0.2)
    assert len(receiver.requests()) == before


def test_a_worker_delivers_each_event_once_signed_for_stripe_construct_event(
    transactional_db, live, webhook_receiver, webhook_settings
):
    _endpoint(live, webhook_receiver)
    with qclusters(count=1, workers=2, env=ENV):
        for n in range(3):
            factories.customer(live, email=f"c{n}@example.com")
        factories.price(live)  # product.created and price.created: not listed, not sent
        wait_for(lambda: len(webhook_receiver.acknowledged()) >= 3, timeout=30)
        _nothing_more_is_sent(webhook_receiver)

    received = webhook_receiver.requests()
    assert all(r.verify_error == "" for r in received), [r.verify_error for r in received]
    created = set(Event.objects.filter(type="customer.created").values_list("pk", flat=True))
    assert sorted(r.event_id for r in received) == sorted(created)  # each exactly once
    assert {r.event.type for r in received} == {"customer.created"}
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("succeeded", 1)}


def test_a_500_is_retried_and_the_event_delivered_once_after_the_2xx(
    transactional_db, live, webhook_receiver, webhook_settings
):
    _endpoint(live, webhook_receiver)
    webhook_receiver.script(500, 500)
    with qclusters(count=1, workers=1, env=ENV):
        factories.customer(live)
        _sweep_until_succeeded(1)
        _nothing_more_is_sent(webhook_receiver)

    received = webhook_receiver.requests()
    assert [r.answered for r in received] == [500, 500, 200]
    assert len({r.event_id for r in received}) == 1 and None not in {r.event_id for r in received}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 200)
    assert [a.status_code for a in delivery.attempt_log.order_by("number")] == [500, 500, 200]


def test_a_delivery_cut_short_by_kill_9_is_sent_by_another_worker_and_acknowledged_once(
    transactional_db, live, webhook_receiver, webhook_settings
):
    _endpoint(live, webhook_receiver)
    webhook_receiver.script(HOLD)  # the first request is held open, never answered
    with qclusters(count=1, workers=1, env=ENV) as (first,):
        factories.customer(live)
        wait_for(lambda: webhook_receiver.requests(), timeout=30, every=0.01)
        first.kill()  # kill -9 of the whole cluster while the POST waits for its answer
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sending", 1)

    with qclusters(count=1, workers=1, env=ENV):
        # The killed worker's claim holds until its lease expires; then the sweep hands the
        # delivery to the new cluster.
        _sweep_until_succeeded(1)
        _nothing_more_is_sent(webhook_receiver)

    received = webhook_receiver.requests()
    assert [r.answered for r in received] == [None, 200]
    assert received[0].event_id == received[1].event_id == delivery.event_id
    assert len(webhook_receiver.acknowledged()) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    first_attempt, second_attempt = delivery.attempt_log.order_by("number")
    assert (first_attempt.status_code, first_attempt.finished_at) == (None, None)
    assert second_attempt.status_code == 200
