"""record_event / event_envelope / event_cause, the dispatcher and the after-commit hand-off."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from billing import services
from billing.events import Cause, event_cause, event_envelope, event_request, record_event
from billing.models import Event
from tests import factories

received: list[str] = []


def remember(event_id: str) -> None:
    received.append(event_id)


def explode(event_id: str) -> None:
    raise RuntimeError("subscriber is down")


@pytest.fixture(autouse=True)
def _reset_received():
    received.clear()


def test_it_hands_committed_events_to_each_subscriber(
    live, settings, django_capture_on_commit_callbacks
):
    settings.BILLING_EVENT_SUBSCRIBERS = ["tests.billing.test_billing_events.remember"]
    with django_capture_on_commit_callbacks(execute=True):
        customer = services.customer_create(environment=live, email="a@example.com")
        assert received == []  # nothing leaves before commit
    assert received == [Event.objects.get(object_id=customer.id).id]


def test_it_hands_over_nothing_when_the_transaction_rolls_back(
    live, settings, django_capture_on_commit_callbacks
):
    settings.BILLING_EVENT_SUBSCRIBERS = ["tests.billing.test_billing_events.remember"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.customer_create(environment=live, email="a@example.com")
            raise RuntimeError("fail after the write")
    assert callbacks == []
    assert received == []
    assert not Event.objects.exists()


def test_it_logs_a_failing_subscriber_and_still_calls_the_others(
    live, settings, django_capture_on_commit_callbacks, caplog
):
    settings.BILLING_EVENT_SUBSCRIBERS = [
        "tests.billing.test_billing_events.explode",
        "tests.billing.test_billing_events.remember",
    ]
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        services.customer_create(environment=live, email="a@example.com")
    assert len(received) == 1
    assert "tests.billing.test_billing_events.explode failed" in caplog.text


dispatched: list[tuple[str, bool]] = []


def dispatch_inside(event: Event) -> None:
    dispatched.append((event.id, transaction.get_connection().in_atomic_block))


def test_it_calls_the_dispatcher_inside_the_transaction_and_marks_the_event(live, settings):
    settings.BILLING_EVENT_DISPATCHER = "tests.billing.test_billing_events.dispatch_inside"
    dispatched.clear()
    customer = services.customer_create(environment=live, email="a@example.com")
    event = Event.objects.get(object_id=customer.id)
    assert dispatched == [(event.id, True)]
    assert event.dispatched_at is not None


def test_without_a_dispatcher_the_event_is_left_for_the_sweep(live, settings):
    settings.BILLING_EVENT_DISPATCHER = ""
    customer = services.customer_create(environment=live, email="a@example.com")
    assert Event.objects.get(object_id=customer.id).dispatched_at is None


def test_it_stamps_the_causing_run_on_events_recorded_inside_event_cause(live):
    customer = factories.customer(live)
    mark = factories.event_mark()
    with event_cause(run_id=41, chain=[[7, 40], [7, 41]]):
        services.customer_update(customer=customer, changes={"name": "Inside"})
    services.customer_update(customer=customer, changes={"name": "Outside"})
    inside, outside = factories.new_events(mark)
    assert (inside.caused_by_run_id, inside.cause_chain) == (41, [[7, 40], [7, 41]])
    assert (outside.caused_by_run_id, outside.cause_chain) == (None, [])


def test_a_service_given_a_cause_stamps_it_on_every_event_it_records(live):
    customer = factories.customer(live, default_payment_method="pm_card_visa")
    services.subscription_create(customer=customer, items=[{"price": factories.price(live).pk}])
    other = factories.customer(live)
    mark = factories.event_mark()
    # The delete cancels the subscription through another service: its event is caused too.
    services.customer_delete(customer=customer, cause=Cause(run_id=52, chain=[[3, 52]]))
    services.customer_update(customer=other, changes={"name": "Later, uncaused"})
    *caused, later = factories.new_events(mark)
    assert [event.type for event in caused] == [
        "customer.subscription.deleted",
        "customer.deleted",
    ]
    assert all((e.caused_by_run_id, e.cause_chain) == (52, [[3, 52]]) for e in caused)
    assert (later.caused_by_run_id, later.cause_chain) == (None, [])


def test_it_renders_previous_attributes_only_when_given(live):
    customer = factories.customer(live)
    plain = record_event(environment=live, account=None, type="customer.created", obj=customer)
    updated = record_event(
        environment=live,
        account=None,
        type="customer.updated",
        obj=customer,
        previous_attributes={"email": None},
        request_id="req_9",
        idempotency_key="key-9",
    )
    assert "previous_attributes" not in event_envelope(plain)["data"]
    envelope = event_envelope(updated)
    assert envelope["data"]["previous_attributes"] == {"email": None}
    assert envelope["request"] == {"id": "req_9", "idempotency_key": "key-9"}
    assert envelope["created"] == int(updated.created.timestamp())


def test_it_stamps_the_service_call_idempotency_key_on_its_events(live):
    mark = factories.event_mark()
    services.customer_create(environment=live, idempotency_key="run/3/step/0", request_id="req_5")
    (event,) = factories.new_events(mark)
    assert event_envelope(event)["request"] == {"id": "req_5", "idempotency_key": "run/3/step/0"}


def test_it_inherits_the_outer_request_key_when_a_service_sets_only_its_request_id(live):
    mark = factories.event_mark()
    with event_request(idempotency_key="client-key"):
        services.customer_create(environment=live, request_id="req_7")
    (event,) = factories.new_events(mark)
    assert (event.request_id, event.idempotency_key) == ("req_7", "client-key")
