"""Subscriptions: create (first invoice paid or failed), update, cancel."""

from __future__ import annotations

import pytest

from billing import services
from billing.errors import InvalidRequestError, ProviderError
from billing.models import Event, Invoice, Subscription
from tests import factories


@pytest.fixture
def price(live):
    return factories.price(live, unit_amount=2000, currency="usd", interval="month")


def _subscribe(live, price, method: str = "pm_card_visa", **kwargs) -> Subscription:
    customer = factories.customer(live, default_payment_method=method)
    return services.subscription_create(
        customer=customer, items=[{"price": price, "quantity": 2}], **kwargs
    )


def test_it_creates_an_active_subscription_with_a_paid_first_invoice(live, price):
    mark = factories.event_mark()
    subscription = _subscribe(live, price, metadata={"source": "test"})
    assert subscription.status == "active"
    invoice = subscription.latest_invoice
    assert (invoice.status, invoice.total, invoice.subscription_id) == (
        "paid",
        4000,
        subscription.pk,
    )
    assert factories.new_event_types(mark) == [
        "charge.succeeded",
        "customer.created",
        "customer.subscription.created",
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    (created,) = factories.new_events(mark, "customer.subscription.created")
    obj = created.data["object"]
    assert obj["items"]["object"] == "list"
    assert obj["items"]["data"][0]["price"]["id"] == price.pk
    assert obj["items"]["data"][0]["quantity"] == 2
    assert obj["metadata"] == {"source": "test"}
    (updated,) = factories.new_events(mark, "customer.subscription.updated")
    assert updated.data["previous_attributes"] == {"status": "incomplete"}
    assert updated.data["object"]["latest_invoice"] == invoice.pk


def test_it_leaves_the_subscription_incomplete_when_the_first_payment_is_declined(live, price):
    mark = factories.event_mark()
    subscription = _subscribe(live, price, method="pm_card_chargeDeclined")
    assert subscription.status == "incomplete"
    assert subscription.latest_invoice.status == "open"
    types = factories.new_event_types(mark)
    assert "invoice.payment_failed" in types and "charge.failed" in types
    assert "customer.subscription.updated" not in types and "invoice.paid" not in types
    (failed,) = factories.new_events(mark, "payment_intent.payment_failed")
    assert failed.data["object"]["last_payment_error"]["decline_code"] == "generic_decline"


def test_it_activates_an_incomplete_subscription_when_its_invoice_is_paid(live, price):
    subscription = _subscribe(live, price, method="pm_card_chargeDeclined")
    mark = factories.event_mark()
    services.invoice_pay(invoice=subscription.latest_invoice, payment_method="pm_card_visa")
    subscription.refresh_from_db()
    assert subscription.status == "active"
    (updated,) = factories.new_events(mark, "customer.subscription.updated")
    assert updated.data["previous_attributes"] == {"status": "incomplete"}


def test_it_makes_an_active_subscription_past_due_when_a_renewal_fails(live, price):
    subscription = _subscribe(live, price)
    renewal = services.invoice_create(
        customer=subscription.customer,
        subscription=subscription,
        lines=[{"price": price, "quantity": 2}],
    )
    services.invoice_pay(invoice=renewal, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    subscription.refresh_from_db()
    assert subscription.status == "past_due"


def test_it_uses_the_subscription_payment_method_over_the_customer_one(live, price):
    subscription = _subscribe(
        live, price, method="pm_card_chargeDeclined", default_payment_method="pm_card_visa"
    )
    assert subscription.status == "active"
    assert subscription.default_payment_method == "pm_card_visa"


def test_it_rolls_back_everything_on_a_transient_failure(live, price):
    customer = factories.customer(live, default_payment_method="pm_card_visa")
    services.provider_fail_next(environment=live, count=1)
    events = Event.objects.count()
    with pytest.raises(ProviderError):
        services.subscription_create(customer=customer, items=[{"price": price, "quantity": 1}])
    assert not Subscription.objects.exists() and not Invoice.objects.exists()
    assert Event.objects.count() == events


def test_it_rejects_bad_items(live, price):
    customer = factories.customer(live, default_payment_method="pm_card_visa")
    one_time = factories.price(live, interval="")
    euros = factories.price(live, currency="eur")
    cases = [
        ([], "items"),
        ([{"price": one_time}], "items[0][price]"),
        ([{"price": price, "quantity": 0}], "items[0][quantity]"),
        ([{"price": price}, {"price": euros}], "items"),
    ]
    for items, param in cases:
        with pytest.raises(InvalidRequestError) as caught:
            services.subscription_create(customer=customer, items=items)
        assert caught.value.param == param
    assert not Subscription.objects.exists()


def test_it_needs_a_payment_method(live, price):
    customer = factories.customer(live)
    with pytest.raises(InvalidRequestError) as caught:
        services.subscription_create(customer=customer, items=[{"price": price}])
    assert caught.value.param == "default_payment_method"


def test_it_updates_metadata_with_previous_attributes(live, price):
    subscription = _subscribe(live, price, metadata={"tier": "gold"})
    mark = factories.event_mark()
    services.subscription_update(
        subscription=subscription, changes={"metadata": {"tier": "silver"}}
    )
    (event,) = factories.new_events(mark)
    assert event.type == "customer.subscription.updated"
    assert event.data["previous_attributes"] == {"metadata": {"tier": "gold"}}


def test_it_replaces_items_on_update(live, price):
    subscription = _subscribe(live, price)
    mark = factories.event_mark()
    subscription = services.subscription_update(
        subscription=subscription, changes={"items": [{"price": price.pk, "quantity": 5}]}
    )
    assert [item.quantity for item in subscription.items.all()] == [5]
    (event,) = factories.new_events(mark)
    assert event.data["previous_attributes"]["items"]["data"][0]["quantity"] == 2


def test_it_cancels_at_period_end_with_an_updated_event(live, price):
    subscription = _subscribe(live, price)
    mark = factories.event_mark()
    subscription = services.subscription_cancel(subscription=subscription, at_period_end=True)
    assert subscription.status == "active" and subscription.cancel_at_period_end
    (event,) = factories.new_events(mark)
    assert event.type == "customer.subscription.updated"
    assert event.data["previous_attributes"] == {"cancel_at_period_end": False, "canceled_at": None}


def test_it_cancels_now_with_a_deleted_event(live, price):
    subscription = _subscribe(live, price)
    mark = factories.event_mark()
    subscription = services.subscription_cancel(subscription=subscription)
    assert subscription.status == "canceled" and subscription.ended_at is not None
    (event,) = factories.new_events(mark)
    assert event.type == "customer.subscription.deleted"
    assert event.data["object"]["status"] == "canceled"
    assert "previous_attributes" not in event.data
    with pytest.raises(InvalidRequestError):
        services.subscription_cancel(subscription=subscription)


def test_it_carries_the_connected_account_through_the_flow(live):
    account = services.account_create(environment=live, name="Acme")
    price = factories.price(live, account=account)
    customer = factories.customer(live, account=account, default_payment_method="pm_card_visa")
    mark = factories.event_mark()
    services.subscription_create(customer=customer, items=[{"price": price}])
    assert {e.account_id for e in factories.new_events(mark)} == {account.pk}
