"""Payment intents and the simulator's test payment methods."""

from __future__ import annotations

import pytest

from billing import services
from billing.errors import InvalidRequestError, ProviderError
from billing.models import Charge, Event, PaymentIntent, ProviderFault
from tests import factories


def _confirmed(live, method: str) -> PaymentIntent:
    customer = factories.customer(live)
    intent = services.payment_intent_create(
        environment=live, amount=2500, currency="usd", customer=customer
    )
    return services.payment_intent_confirm(payment_intent=intent, payment_method=method)


def test_it_creates_an_intent_waiting_for_a_payment_method(live):
    mark = factories.event_mark()
    intent = services.payment_intent_create(environment=live, amount=1000, currency="EUR")
    assert intent.id.startswith("pi_")
    assert (intent.status, intent.currency) == ("requires_payment_method", "eur")
    assert factories.new_event_types(mark) == ["payment_intent.created"]


@pytest.mark.parametrize("method", ["pm_card_visa", "pm_card_mastercard"])
def test_it_succeeds_with_a_succeeding_test_card(live, method):
    mark = factories.event_mark()
    intent = _confirmed(live, method)
    assert (intent.status, intent.amount_received) == ("succeeded", 2500)
    charge = intent.latest_charge
    assert (charge.status, charge.paid, charge.amount_captured) == ("succeeded", True, 2500)
    assert charge.payment_method == method
    assert factories.new_event_types(mark) == [
        "charge.succeeded",
        "customer.created",
        "payment_intent.created",
        "payment_intent.succeeded",
    ]


@pytest.mark.parametrize(
    ("method", "decline_code", "message"),
    [
        ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
    ],
)
def test_it_records_a_decline_with_stripe_last_payment_error(live, method, decline_code, message):
    mark = factories.event_mark()
    intent = _confirmed(live, method)
    expected_error = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": decline_code,
        "message": message,
    }
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error == expected_error
    charge = intent.latest_charge
    assert (charge.status, charge.paid, charge.failure_code) == ("failed", False, "card_declined")
    assert charge.outcome["reason"] == decline_code
    (failed,) = factories.new_events(mark, "payment_intent.payment_failed")
    assert failed.data["object"]["last_payment_error"] == expected_error
    assert len(factories.new_events(mark, "charge.failed")) == 1
    assert factories.new_events(mark, "payment_intent.succeeded") == []


def test_it_can_confirm_again_after_a_decline(live):
    intent = _confirmed(live, "pm_card_chargeDeclined")
    intent = services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_visa")
    assert intent.status == "succeeded"
    assert intent.charges.count() == 2


def test_it_leaves_a_delayed_payment_processing_until_settled(live):
    intent = _confirmed(live, "pm_delayed_success")
    assert intent.status == "processing"
    assert intent.latest_charge.status == "pending"
    mark = factories.event_mark()
    intent = services.payment_intent_settle(payment_intent=intent, succeeded=True)
    assert intent.status == "succeeded"
    assert factories.new_event_types(mark) == ["charge.succeeded", "payment_intent.succeeded"]


def test_it_rejects_an_unknown_payment_method(live):
    intent = services.payment_intent_create(environment=live, amount=100, currency="usd")
    with pytest.raises(InvalidRequestError) as caught:
        services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_bogus")
    assert (caught.value.param, caught.value.code) == ("payment_method", "resource_missing")
    assert not Charge.objects.exists()


@pytest.mark.parametrize("amount", [-100, 0, 12.5, "100", True])
def test_it_rejects_amounts_that_are_not_positive_integers(live, amount):
    with pytest.raises(InvalidRequestError) as caught:
        services.payment_intent_create(environment=live, amount=amount, currency="usd")
    assert caught.value.param == "amount"
    assert not PaymentIntent.objects.exists()


@pytest.mark.parametrize("currency", ["xyz", "US", "", None])
def test_it_rejects_unknown_currencies(live, currency):
    with pytest.raises(InvalidRequestError) as caught:
        services.payment_intent_create(environment=live, amount=100, currency=currency)
    assert caught.value.param == "currency"
    assert "currency" in caught.value.message


def test_it_reports_a_transient_provider_failure_as_retryable_and_writes_nothing(live):
    intent = services.payment_intent_create(environment=live, amount=100, currency="usd")
    services.provider_fail_next(environment=live, count=2)
    events = Event.objects.count()
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_visa")
        assert caught.value.retryable is True
        assert caught.value.to_dict()["type"] == "api_error"
        assert caught.value.http_status == 503
    assert (Event.objects.count(), Charge.objects.count()) == (events, 0)
    assert PaymentIntent.objects.get(pk=intent.pk).status == "requires_payment_method"
    assert ProviderFault.objects.get(environment=live).remaining_failures == 0
    intent = services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_visa")
    assert intent.status == "succeeded"


def test_it_rolls_back_an_intent_created_and_confirmed_in_one_call(live):
    services.provider_fail_next(environment=live, count=1)
    with pytest.raises(ProviderError):
        services.payment_intent_create(
            environment=live,
            amount=100,
            currency="usd",
            payment_method="pm_card_visa",
            confirm=True,
        )
    assert not PaymentIntent.objects.exists()
    assert not Event.objects.exists()


def test_it_keeps_transient_failures_to_their_environment(live, sandbox):
    services.provider_fail_next(environment=sandbox, count=1)
    intent = services.payment_intent_create(
        environment=live, amount=100, currency="usd", payment_method="pm_card_visa", confirm=True
    )
    assert intent.status == "succeeded"


def test_it_cancels_an_unpaid_intent(live):
    intent = services.payment_intent_create(environment=live, amount=100, currency="usd")
    mark = factories.event_mark()
    intent = services.payment_intent_cancel(payment_intent=intent)
    assert intent.status == "canceled" and intent.canceled_at is not None
    assert factories.new_event_types(mark) == ["payment_intent.canceled"]
    with pytest.raises(InvalidRequestError):
        services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_visa")


def test_it_updates_an_unconfirmed_intent_without_an_event(live):
    intent = services.payment_intent_create(environment=live, amount=100, currency="usd")
    mark = factories.event_mark()
    intent = services.payment_intent_update(
        payment_intent=intent, changes={"amount": 300, "metadata": {"order": "42"}}
    )
    assert (intent.amount, intent.metadata) == (300, {"order": "42"})
    assert factories.new_events(mark) == []


def test_it_refuses_to_change_the_amount_of_a_succeeded_intent(live):
    intent = _confirmed(live, "pm_card_visa")
    with pytest.raises(InvalidRequestError) as caught:
        services.payment_intent_update(payment_intent=intent, changes={"amount": 1})
    assert caught.value.param == "amount"
