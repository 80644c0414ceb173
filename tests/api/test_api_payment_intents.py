"""Payment intents over the API: create, update, confirm with Stripe's test methods, cancel."""

from __future__ import annotations

from billing.models import Charge, Event, PaymentIntent
from billing.services import provider_fail_next
from tests.api_client import api_for, error_of


def test_it_creates_and_confirms_a_payment_intent(live):
    api = api_for(live)
    intent = api.post("/payment_intents", {"amount": 2500, "currency": "usd"}).json()
    assert (intent["object"], intent["status"]) == ("payment_intent", "requires_payment_method")
    confirmed = api.post(
        f"/payment_intents/{intent['id']}/confirm", {"payment_method": "pm_card_visa"}
    )
    assert confirmed.status_code == 200, confirmed.content
    body = confirmed.json()
    assert (body["status"], body["amount_received"]) == ("succeeded", 2500)
    assert api.get("/charges", payment_intent=intent["id"]).json()["data"][0]["paid"] is True


def test_a_declined_confirm_is_a_402_card_error_and_the_failure_is_recorded(live):
    api = api_for(live)
    intent = api.post("/payment_intents", {"amount": 2500, "currency": "usd"}).json()
    response = api.post(
        f"/payment_intents/{intent['id']}/confirm",
        {"payment_method": "pm_card_chargeDeclinedInsufficientFunds"},
    )
    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert error["payment_intent"]["id"] == intent["id"]
    assert error["payment_intent"]["last_payment_error"]["decline_code"] == "insufficient_funds"
    assert error["charge"] == error["payment_intent"]["latest_charge"]
    assert Charge.objects.get(pk=error["charge"]).status == "failed"
    assert Event.objects.filter(
        type="payment_intent.payment_failed", object_id=intent["id"]
    ).exists()


def test_it_confirms_on_create(live):
    body = (
        api_for(live)
        .post(
            "/payment_intents",
            {"amount": 900, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True},
        )
        .json()
    )
    assert body["status"] == "succeeded"


def test_it_updates_cancels_lists_and_retrieves(live):
    api = api_for(live)
    customer = api.post("/customers", {}).json()
    intent = api.post(
        "/payment_intents", {"amount": 100, "currency": "usd", "customer": customer["id"]}
    ).json()
    updated = api.post(
        f"/payment_intents/{intent['id']}", {"amount": 300, "description": "Top-up"}
    ).json()
    assert (updated["amount"], updated["description"]) == (300, "Top-up")
    canceled = api.post(f"/payment_intents/{intent['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert api.get(f"/payment_intents/{intent['id']}").json() == canceled
    listed = api.get("/payment_intents", customer=customer["id"]).json()
    assert [i["id"] for i in listed["data"]] == [intent["id"]]


def test_it_rejects_an_unknown_payment_method(live):
    api = api_for(live)
    intent = api.post("/payment_intents", {"amount": 100, "currency": "usd"}).json()
    response = api.post(f"/payment_intents/{intent['id']}/confirm", {"payment_method": "pm_bogus"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "payment_method"
    assert PaymentIntent.objects.get(pk=intent["id"]).status == "requires_payment_method"


def test_a_transient_provider_failure_is_a_retryable_503_that_changes_nothing(live):
    api = api_for(live)
    intent = api.post("/payment_intents", {"amount": 100, "currency": "usd"}).json()
    events = Event.objects.count()
    provider_fail_next(environment=live, count=1)
    path = f"/payment_intents/{intent['id']}/confirm"
    failed = api.post(path, {"payment_method": "pm_card_visa"}, idempotency_key="try")
    assert failed.status_code == 503
    assert error_of(failed)["type"] == "api_error"
    assert Event.objects.count() == events
    retried = api.post(path, {"payment_method": "pm_card_visa"}, idempotency_key="try")
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
    assert retried.json()["status"] == "succeeded"
