"""The simulated payment provider and its transient-failure switch."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing import services
from billing.errors import InvalidRequestError, ProviderError
from billing.models import ProviderFault
from billing.provider import SimulatedProvider, get_provider, use_up_fault_after_rollback


@pytest.mark.parametrize(
    ("method", "status", "code", "decline_code"),
    [
        ("pm_card_visa", "succeeded", "", ""),
        ("pm_card_mastercard", "succeeded", "", ""),
        ("pm_card_chargeDeclined", "failed", "card_declined", "generic_decline"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "failed",
            "card_declined",
            "insufficient_funds",
        ),
        ("pm_delayed_success", "processing", "", ""),
        ("pm_delayed_failure", "processing", "", ""),
    ],
)
def test_it_honours_stripe_test_payment_methods(live, method, status, code, decline_code):
    result = SimulatedProvider().charge(
        environment=live, amount=100, currency="usd", payment_method=method, idempotency_key="k"
    )
    assert (result.status, result.failure_code, result.decline_code) == (status, code, decline_code)


def test_it_is_the_default_provider():
    assert isinstance(get_provider(), SimulatedProvider)


def test_it_rejects_unknown_and_missing_payment_methods(live):
    for method, code in (("pm_card_unknown", "resource_missing"), ("", "parameter_missing")):
        with pytest.raises(InvalidRequestError) as caught:
            SimulatedProvider().charge(
                environment=live,
                amount=1,
                currency="usd",
                payment_method=method,
                idempotency_key="k",
            )
        assert (caught.value.code, caught.value.param) == (code, "payment_method")


def test_it_fails_the_next_n_calls_then_recovers(live):
    services.provider_fail_next(environment=live, count=2)
    provider = SimulatedProvider()
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            provider.refund(environment=live, charge_id="ch_1", amount=1, idempotency_key="k")
        assert caught.value.retryable
    assert provider.refund(environment=live, charge_id="ch_1", amount=1, idempotency_key="k")


def test_it_counts_a_failure_once_when_each_transaction_owner_recounts_it(live):
    """A workflow step (or the API) runs the service inside its own transaction; after rolling
    that back it counts the failure again, and the count ends right."""
    services.provider_fail_next(environment=live, count=2)
    intent = services.payment_intent_create(environment=live, amount=100, currency="usd")
    with pytest.raises(ProviderError) as caught:
        with transaction.atomic():
            services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_visa")
    use_up_fault_after_rollback(caught.value)
    use_up_fault_after_rollback(caught.value)  # a further caller out: not counted again
    assert ProviderFault.objects.get(environment=live).remaining_failures == 1


def test_it_refuses_a_negative_failure_count(live):
    with pytest.raises(InvalidRequestError) as caught:
        services.provider_fail_next(environment=live, count=-1)
    assert caught.value.param == "count"
