"""Refunds and disputes (chargebacks) of a charge."""

from __future__ import annotations

import pytest

from billing import services
from billing.errors import InvalidRequestError, ProviderError
from billing.models import Dispute, Event, Refund
from tests import factories


def test_it_refunds_part_of_a_charge_with_previous_attributes(live):
    charge = factories.paid_charge(live, amount=5000)
    mark = factories.event_mark()
    refund = services.refund_create(charge=charge, amount=2000, reason="requested_by_customer")
    assert refund.id.startswith("re_")
    assert (refund.amount, refund.status, refund.payment_intent_id) == (
        2000,
        "succeeded",
        charge.payment_intent_id,
    )
    assert factories.new_event_types(mark) == ["charge.refunded", "refund.created"]
    (refunded,) = factories.new_events(mark, "charge.refunded")
    assert refunded.data["object"]["amount_refunded"] == 2000
    assert refunded.data["previous_attributes"] == {"amount_refunded": 0}


def test_it_refunds_the_rest_by_default_and_marks_the_charge_refunded(live):
    charge = factories.paid_charge(live, amount=5000)
    services.refund_create(charge=charge, amount=1000)
    refund = services.refund_create(payment_intent=charge.payment_intent)
    charge.refresh_from_db()
    assert refund.amount == 4000
    assert (charge.amount_refunded, charge.refunded) == (5000, True)


def test_it_refuses_more_than_the_unrefunded_amount(live):
    charge = factories.paid_charge(live, amount=5000)
    services.refund_create(charge=charge, amount=3000)
    with pytest.raises(InvalidRequestError) as caught:
        services.refund_create(charge=charge, amount=2001)
    assert (caught.value.param, caught.value.code) == ("amount", "amount_too_large")
    with pytest.raises(InvalidRequestError) as caught:
        services.refund_create(charge=charge, amount=-1)
    assert caught.value.param == "amount"
    assert Refund.objects.count() == 1


def test_it_refuses_to_refund_a_failed_charge(live):
    intent = services.payment_intent_create(
        environment=live,
        amount=100,
        currency="usd",
        payment_method="pm_card_chargeDeclined",
        confirm=True,
    )
    with pytest.raises(InvalidRequestError) as caught:
        services.refund_create(charge=intent.latest_charge)
    assert caught.value.param == "charge"


def test_it_writes_no_refund_when_the_provider_fails(live):
    charge = factories.paid_charge(live)
    services.provider_fail_next(environment=live, count=1)
    events = Event.objects.count()
    with pytest.raises(ProviderError):
        services.refund_create(charge=charge)
    charge.refresh_from_db()
    assert charge.amount_refunded == 0 and not Refund.objects.exists()
    assert Event.objects.count() == events


def test_it_opens_a_dispute_on_a_charge(live):
    charge = factories.paid_charge(live, amount=4200)
    mark = factories.event_mark()
    dispute = services.dispute_create(charge=charge, reason="fraudulent")
    assert dispute.id.startswith("dp_")
    assert (dispute.amount, dispute.status, dispute.reason) == (
        4200,
        "needs_response",
        "fraudulent",
    )
    (event,) = factories.new_events(mark)
    assert event.type == "charge.dispute.created"
    assert event.data["object"]["charge"] == charge.pk
    charge.refresh_from_db()
    assert charge.disputed


def test_it_refuses_a_second_dispute_and_unknown_reasons(live):
    charge = factories.paid_charge(live)
    with pytest.raises(InvalidRequestError) as caught:
        services.dispute_create(charge=charge, reason="bored")
    assert caught.value.param == "reason"
    services.dispute_create(charge=charge)
    with pytest.raises(InvalidRequestError):
        services.dispute_create(charge=charge)
    assert Dispute.objects.count() == 1
