"""`Idempotency-Key` on POST: a replay returns the first response and writes nothing."""

from __future__ import annotations

import json

import pytest

from billing.models import Customer, Event, IdempotencyRecord, PaymentIntent
from tests import factories
from tests.api_client import Api, api_for, error_of
from tests.concurrency import race


def _counts() -> tuple[int, int, int]:
    return Customer.objects.count(), Event.objects.count(), IdempotencyRecord.objects.count()


def test_it_replays_the_first_response_and_writes_nothing(live):
    api = api_for(live)
    first = api.post("/customers", {"email": "ada@example.com"}, idempotency_key="k-1")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first
    before = _counts()
    again = api.post("/customers", {"email": "ada@example.com"}, idempotency_key="k-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert _counts() == before
    assert Customer.objects.count() == 1


def test_it_stores_the_response_with_the_write(live):
    api = api_for(live)
    body = api.post("/customers", {"email": "ada@example.com"}, idempotency_key="k-2").json()
    record = IdempotencyRecord.objects.get(key="api:k-2")
    assert record.environment == live
    assert record.scope == "POST /api/v1/customers"
    assert (record.response_status, record.response_body) == (200, body)
    # The key also reaches the service, so the event says which request caused it.
    event = Event.objects.get(type="customer.created")
    assert event.idempotency_key == "k-2"


def test_it_treats_a_differently_formatted_but_equal_body_as_the_same_request(live):
    api = api_for(live)
    first = api.post(
        "/customers", raw=json.dumps({"email": "a@example.com", "name": "A"}), idempotency_key="k"
    )
    again = api.post(
        "/customers", raw='{ "name": "A",  "email": "a@example.com" }', idempotency_key="k"
    )
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_it_rejects_the_same_key_with_other_parameters(live):
    api = api_for(live)
    api.post("/customers", {"email": "ada@example.com"}, idempotency_key="k-3")
    before = _counts()
    response = api.post("/customers", {"email": "bob@example.com"}, idempotency_key="k-3")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["param"]) == ("idempotency_error", "Idempotency-Key")
    assert _counts() == before


def test_it_rejects_the_same_key_on_another_path(live):
    api = api_for(live)
    customer = api.post("/customers", {}, idempotency_key="k-4").json()
    before = _counts()
    response = api.post(f"/customers/{customer['id']}", {}, idempotency_key="k-4")
    assert response.status_code == 400
    assert error_of(response)["type"] == "idempotency_error"
    assert _counts() == before


def test_keys_are_per_environment(live, sandbox):
    first = api_for(live).post("/customers", {"email": "a@example.com"}, idempotency_key="same")
    second = api_for(sandbox).post("/customers", {"email": "a@example.com"}, idempotency_key="same")
    assert "Idempotent-Replayed" not in second
    assert first.json()["id"] != second.json()["id"]
    assert Customer.objects.count() == 2


def test_without_a_key_each_post_writes(live):
    api = api_for(live)
    api.post("/customers", {"email": "a@example.com"})
    api.post("/customers", {"email": "a@example.com"})
    assert Customer.objects.count() == 2
    assert IdempotencyRecord.objects.filter(key__startswith="api:").count() == 0


def test_it_replays_a_verb_without_running_it_twice(live):
    api = api_for(live)
    intent = api.post("/payment_intents", {"amount": 500, "currency": "usd"}).json()
    first = api.post(
        f"/payment_intents/{intent['id']}/confirm",
        {"payment_method": "pm_card_visa"},
        idempotency_key="pay-1",
    )
    assert first.json()["status"] == "succeeded"
    events = Event.objects.count()
    again = api.post(
        f"/payment_intents/{intent['id']}/confirm",
        {"payment_method": "pm_card_visa"},
        idempotency_key="pay-1",
    )
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Event.objects.count() == events
    assert PaymentIntent.objects.get(pk=intent["id"]).latest_charge is not None


def test_a_failed_request_writes_nothing_and_leaves_the_key_usable(live):
    api = api_for(live)
    before = _counts()
    failed = api.post(
        "/payment_intents", {"amount": 500, "currency": "xyz"}, idempotency_key="retry"
    )
    assert failed.status_code == 400
    assert error_of(failed)["param"] == "currency"
    assert _counts() == before
    fixed = api.post(
        "/payment_intents", {"amount": 500, "currency": "usd"}, idempotency_key="retry"
    )
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed
    assert PaymentIntent.objects.count() == 1


def test_it_does_not_store_requests_rejected_before_they_run(live):
    api = api_for(live)
    bad = api.post("/payment_intents", {"amount": -1, "currency": "usd"}, idempotency_key="fixme")
    assert bad.status_code == 400
    good = api.post("/payment_intents", {"amount": 100, "currency": "usd"}, idempotency_key="fixme")
    assert good.status_code == 200
    assert "Idempotent-Replayed" not in good


def test_it_rejects_an_overlong_key(live):
    response = api_for(live).post("/customers", {}, idempotency_key="k" * 300)
    assert response.status_code == 400
    assert error_of(response)["param"] == "Idempotency-Key"
    assert Customer.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_write_once():
    """Two requests racing with the same key: one writes, the other waits and replays it."""
    live = factories.environment("live")
    raw = api_for(live).raw_key
    results = race(
        2,
        lambda: Api(raw).post("/customers", {"email": "race@example.com"}, idempotency_key="race"),
    )
    assert [r.status_code for r in results] == [200, 200]
    assert results[0].json() == results[1].json()
    assert sorted(r.get("Idempotent-Replayed", "") for r in results) == ["", "true"]
    assert Customer.objects.count() == 1
    assert Event.objects.filter(type="customer.created").count() == 1
