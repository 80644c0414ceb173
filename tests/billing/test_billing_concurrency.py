"""Concurrent callers on PostgreSQL: row locks, idempotency keys and the fault switch across
connections. Each thread has its own database connection, like separate workers."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing import services
from billing.errors import BillingError, ProviderError
from billing.models import Customer, PaymentIntent, ProviderFault, Refund
from tests import factories
from tests.concurrency import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_never_refunds_more_than_was_charged_under_concurrency():
    live = factories.environment("live")
    charge = factories.paid_charge(live, amount=1000)
    results = race(4, lambda: services.refund_create(charge=charge, amount=600))
    refunds = [r for r in results if isinstance(r, Refund)]
    errors = [r for r in results if isinstance(r, BillingError)]
    assert (len(refunds), len(errors)) == (1, 3)
    charge.refresh_from_db()
    assert charge.amount_refunded == 600


def test_concurrent_step_updates_of_one_customer_lose_no_change():
    """The service reads the customer again under its row lock (`select_for_update()`), so the
    metadata merges queue behind each other instead of overwriting each other."""
    from workflows.actions import registry
    from workflows.actions.registry import ActionContext

    live = factories.environment("live")
    customer = factories.customer(live)
    action = registry.get("customers.update")
    keys = iter(range(6))

    def step() -> dict:
        n = next(keys)
        ctx = ActionContext(environment=live, idempotency_key=f"{n}/tag/")
        with transaction.atomic():
            return action.execute(ctx, {"customer": customer.pk, "metadata": {f"k{n}": "v"}})

    results = race(6, step)
    assert all(isinstance(r, dict) for r in results), results
    customer.refresh_from_db()
    assert customer.metadata == {f"k{n}": "v" for n in range(6)}


def test_it_makes_one_object_for_one_key_under_concurrency():
    live = factories.environment("live")
    results = race(
        4,
        lambda: services.customer_create(
            environment=live, email="race@example.com", idempotency_key="same-key"
        ),
    )
    assert all(isinstance(r, Customer) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Customer.objects.count() == 1


def test_it_counts_a_transient_failure_even_when_the_caller_rolls_back():
    live = factories.environment("live")
    intent = services.payment_intent_create(environment=live, amount=100, currency="usd")
    services.provider_fail_next(environment=live, count=1)
    # Like a workflow step: the service runs inside the caller's transaction, which the
    # failure rolls back as a whole.
    with pytest.raises(ProviderError), transaction.atomic():
        services.payment_intent_confirm(payment_intent=intent, payment_method="pm_card_visa")
    assert ProviderFault.objects.get(environment=live).remaining_failures == 0
    with transaction.atomic():
        intent = services.payment_intent_confirm(
            payment_intent=intent, payment_method="pm_card_visa"
        )
    assert intent.status == "succeeded"
    assert PaymentIntent.objects.get().charges.count() == 1
