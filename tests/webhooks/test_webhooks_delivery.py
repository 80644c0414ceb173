"""Webhook deliveries in process: the outbox rows, the signed POST, retries, the window, resend.

A real HTTP receiver on 127.0.0.1 verifies every request with Stripe's own
`stripe.Webhook.construct_event`; events are made with the billing services. The task's code
(`webhook_deliver`) is called here the way a worker calls it
(tests/webhooks/test_webhooks_workers.py runs real workers).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.models import Event
from tests import factories
from tests.api_client import api_for
from tests.httpserver import Reply
from webhooks import services
from webhooks.delivery import retry_delay, webhook_deliver
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.sweep import webhook_sweep

pytestmark = pytest.mark.usefixtures("webhook_settings")


def _endpoint(environment, receiver, events=("*",)):
    endpoint = services.webhook_endpoint_create(
        environment=environment, url=receiver.url(), enabled_events=list(events)
    )
    receiver.secret = endpoint.secret
    return endpoint


def _deliver_until(delivery: WebhookDelivery, status: str, timeout: float = 10.0) -> None:
    """Attempt whenever it is due, as the sweep would hand it out, until it reaches `status`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        webhook_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        if delivery.status == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"delivery {delivery.pk} is {delivery.status}, not {status}")


def test_it_posts_the_event_signed_so_stripe_construct_event_verifies_it(live, webhook_receiver):
    endpoint = _endpoint(live, webhook_receiver)
    customer = factories.customer(live, email="ada@example.com")
    event = Event.objects.get(type="customer.created", object_id=customer.pk)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, event=event)

    assert webhook_deliver(delivery_id=delivery.pk) == "succeeded"

    [received] = webhook_receiver.requests()
    assert received.verify_error == ""
    assert received.event.id == event.pk
    assert received.event.type == "customer.created"
    assert received.event.data.object.email == "ada@example.com"
    assert received.signature.startswith("t=") and ",v1=" in received.signature
    # Byte for byte what the API answers for this event.
    assert received.body == api_for(live).get(f"/events/{event.pk}").content
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code == 200 and attempt.finished_at is not None


def test_a_signature_made_with_another_secret_does_not_verify(live, webhook_receiver):
    _endpoint(live, webhook_receiver)
    factories.customer(live)
    webhook_receiver.secret = "whsec_not_the_endpoints_secret"

    webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)

    [received] = webhook_receiver.requests()
    assert received.event is None
    assert "No signatures found matching the expected signature" in received.verify_error
    assert WebhookDelivery.objects.get().status == "pending"  # the 400 is retried


def test_each_matching_endpoint_gets_one_delivery_and_others_none(live, sandbox, webhook_receiver):
    everything = _endpoint(live, webhook_receiver)
    invoices_only = _endpoint(live, webhook_receiver, events=["invoice.paid"])
    customers = _endpoint(live, webhook_receiver, events=["customer.created", "customer.updated"])
    other_environment = _endpoint(sandbox, webhook_receiver)

    customer = factories.customer(live)
    event = Event.objects.get(type="customer.created", object_id=customer.pk)

    assert sorted(
        WebhookDelivery.objects.filter(event=event).values_list("endpoint", flat=True)
    ) == sorted([everything.pk, customers.pk])
    assert not WebhookDelivery.objects.filter(
        endpoint__in=[invoices_only, other_environment]
    ).exists()


def test_a_change_that_rolls_back_leaves_no_delivery(live, webhook_receiver):
    _endpoint(live, webhook_receiver)

    with pytest.raises(RuntimeError), transaction.atomic():
        factories.customer(live)
        assert WebhookDelivery.objects.count() == 1  # written with the event
        raise RuntimeError("the change fails after its event was recorded")

    assert WebhookDelivery.objects.count() == 0


def test_a_500_is_retried_with_backoff_and_the_event_is_delivered_once_after_the_2xx(
    live, webhook_receiver
):
    endpoint = _endpoint(live, webhook_receiver)
    webhook_receiver.script(500, 500)
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    assert webhook_deliver(delivery_id=delivery.pk) == "pending"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > timezone.now() - timedelta(seconds=0.01)
    assert (delivery.last_status_code, delivery.last_error) == (500, "The endpoint answered 500.")
    assert webhook_deliver(delivery_id=delivery.pk) == "skipped"  # not due yet

    _deliver_until(delivery, "succeeded")
    for _ in range(3):  # whatever hands it out again afterwards sends nothing
        assert webhook_deliver(delivery_id=delivery.pk) == "skipped"
    assert webhook_sweep()["deliveries"] == 0

    answers = [r.answered for r in webhook_receiver.requests()]
    assert answers == [500, 500, 200]
    assert all(r.event is not None for r in webhook_receiver.requests())
    assert [a.status_code for a in delivery.attempt_log.order_by("number")] == [500, 500, 200]


def test_an_unreachable_endpoint_is_retried_and_the_error_is_logged(live, webhook_receiver):
    endpoint = services.webhook_endpoint_create(
        environment=live, url="http://127.0.0.1:9/nothing-listens", enabled_events=["*"]
    )
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    assert webhook_deliver(delivery_id=delivery.pk) == "pending"

    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None
    assert attempt.error.startswith("POST to 127.0.0.1 failed")


def test_the_address_rules_of_http_post_apply_to_webhooks(live, webhook_receiver, settings):
    # A wildcard entry admits the name, but a host that resolves to a loopback address must be
    # listed by its exact name: the delivery is refused before anything is sent.
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["*"]}
    endpoint = _endpoint(live, webhook_receiver)
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    webhook_deliver(delivery_id=delivery.pk)

    assert webhook_receiver.requests() == []
    [attempt] = delivery.attempt_log.all()
    assert "resolves to a private or loopback address" in attempt.error


def test_it_gives_up_once_the_event_is_older_than_the_retry_window(
    live, webhook_receiver, settings
):
    window = timedelta(days=3)
    settings.BILLFLOW = {
        **settings.BILLFLOW,
        "WEBHOOK_RETRY_WINDOW_SECONDS": window.total_seconds(),
    }
    endpoint = _endpoint(live, webhook_receiver)
    webhook_receiver.default = 503
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    # A minute before the window ends: retried.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created=timezone.now() - window + timedelta(minutes=1)
    )
    assert webhook_deliver(delivery_id=delivery.pk) == "pending"
    # Past it: given up.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created=timezone.now() - window - timedelta(seconds=1), next_attempt_at=timezone.now()
    )
    assert webhook_deliver(delivery_id=delivery.pk) == "failed"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.attempts) == ("failed", None, 2)
    assert webhook_sweep()["deliveries"] == 0


def test_the_default_backoff_doubles_with_jitter_and_keeps_trying_for_three_days(settings):
    from config.settings import base

    settings.BILLFLOW = {
        **settings.BILLFLOW,
        **{k: v for k, v in base.BILLFLOW.items() if k.startswith("WEBHOOK_")},
    }
    assert settings.BILLFLOW["WEBHOOK_RETRY_WINDOW_SECONDS"] >= 3 * 24 * 3600
    for attempt, ceiling in [(1, 60), (2, 120), (5, 960), (9, 15360), (10, 21600), (30, 21600)]:
        waits = [retry_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), attempt
        assert len({round(w, 3) for w in waits}) > 100  # jittered, not one fixed wait
    # Even at the longest waits, about 17 or more attempts fit into the three days.
    elapsed, attempts = 0.0, 1
    while elapsed < 3 * 24 * 3600:
        elapsed += retry_delay(attempts)
        attempts += 1
    assert attempts >= 15


def test_a_delivery_whose_worker_died_mid_send_is_sent_again_after_its_lease(
    live, webhook_receiver
):
    from webhooks.delivery import _claim

    endpoint = _endpoint(live, webhook_receiver)
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert _claim(delivery.pk, timezone.now()) is not None  # a worker claims it, then dies

    assert webhook_deliver(delivery_id=delivery.pk) == "skipped"  # its lease still holds
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert webhook_sweep()["deliveries"] == 1
    assert webhook_deliver(delivery_id=delivery.pk) == "succeeded"

    delivery.refresh_from_db()
    assert delivery.attempts == 2
    first, second = delivery.attempt_log.order_by("number")
    assert (first.status_code, first.finished_at) == (None, None)  # no answer was recorded
    assert second.status_code == 200
    assert len(webhook_receiver.acknowledged()) == 1


def test_resend_sends_a_delivered_event_again_and_logs_it_as_a_resend(live, webhook_receiver):
    endpoint = _endpoint(live, webhook_receiver)
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    webhook_deliver(delivery_id=delivery.pk)

    services.webhook_delivery_resend(delivery=delivery)
    assert webhook_deliver(delivery_id=delivery.pk) == "succeeded"

    assert [r.event_id for r in webhook_receiver.acknowledged()] == [delivery.event_id] * 2
    assert [a.resend for a in delivery.attempt_log.order_by("number")] == [False, True]


def test_resend_is_refused_while_the_delivery_is_being_sent(live, webhook_receiver):
    from webhooks.delivery import _claim

    _endpoint(live, webhook_receiver)
    factories.customer(live)
    delivery = WebhookDelivery.objects.get()
    _claim(delivery.pk, timezone.now())

    with pytest.raises(services.WebhookStateError, match="being sent right now"):
        services.webhook_delivery_resend(delivery=delivery)


def test_a_deleted_endpoint_gets_nothing_more(live, webhook_receiver):
    endpoint = _endpoint(live, webhook_receiver)
    factories.customer(live)
    delivery_id = WebhookDelivery.objects.get().pk

    services.webhook_endpoint_delete(endpoint=endpoint)
    billing.customer_create(environment=live, email="later@example.com")

    assert webhook_deliver(delivery_id=delivery_id) == "skipped"
    assert WebhookDelivery.objects.count() == 0
    assert webhook_receiver.requests() == []


def test_a_receiver_trickling_its_answer_is_cut_at_the_timeout_not_per_read(
    live, http_server, settings
):
    settings.BILLFLOW = {**settings.BILLFLOW, "WEBHOOK_TIMEOUT_SECONDS": 1.0}
    # Headers at once, then a byte every 0.4 s for 4 s: no read waits past a per-read timeout.
    http_server.script(Reply(200, "x" * 10, trickle=0.4))
    endpoint = services.webhook_endpoint_create(
        environment=live, url=http_server.url("/hook"), enabled_events=["*"]
    )
    factories.customer(live)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    started = time.monotonic()
    assert webhook_deliver(delivery_id=delivery.pk) == "pending"
    elapsed = time.monotonic() - started

    assert elapsed < 3.0, f"the send took {elapsed:.1f} s, past its 1 s limit"
    [attempt] = delivery.attempt_log.all()
    assert attempt.error == "POST to 127.0.0.1 timed out after 1 s."
    assert len(http_server.requests) == 1
