"""Checkout sessions: create, complete (sync and async payment), expire."""

from __future__ import annotations

import pytest

from billing import services
from billing.errors import InvalidRequestError
from billing.models import CheckoutSession, Subscription
from tests import factories


def _session(live, mode: str = "payment", **kwargs) -> CheckoutSession:
    interval = "month" if mode == "subscription" else ""
    price = factories.price(live, unit_amount=1200, interval=interval)
    return services.checkout_session_create(
        environment=live,
        mode=mode,
        line_items=[{"price": price, "quantity": 2}],
        success_url="https://example.com/ok",
        **kwargs,
    )


def test_it_creates_an_open_session_without_an_event(live):
    price = factories.price(live, unit_amount=1200, interval="")
    mark = factories.event_mark()
    session = services.checkout_session_create(
        environment=live, mode="payment", line_items=[{"price": price, "quantity": 2}]
    )
    assert session.id.startswith("cs_")
    assert (session.status, session.payment_status, session.amount_total) == (
        "open",
        "unpaid",
        2400,
    )
    assert session.expires_at is not None
    assert factories.new_events(mark) == []


def test_it_completes_a_paid_session(live):
    customer = factories.customer(live)
    session = _session(live, customer=customer)
    mark = factories.event_mark()
    session = services.checkout_session_complete(session=session, payment_method="pm_card_visa")
    assert (session.status, session.payment_status) == ("complete", "paid")
    assert factories.new_event_types(mark) == [
        "charge.succeeded",
        "checkout.session.completed",
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    (completed,) = factories.new_events(mark, "checkout.session.completed")
    assert completed.data["object"]["object"] == "checkout.session"
    assert completed.data["object"]["payment_intent"] == session.payment_intent_id


def test_it_keeps_the_session_open_after_a_decline(live):
    session = _session(live)
    mark = factories.event_mark()
    session = services.checkout_session_complete(
        session=session, payment_method="pm_card_chargeDeclined"
    )
    assert session.status == "open"
    assert "checkout.session.completed" not in factories.new_event_types(mark)
    session = services.checkout_session_complete(session=session, payment_method="pm_card_visa")
    assert (session.status, session.payment_status) == ("complete", "paid")


def test_it_settles_a_delayed_payment_later(live):
    session = _session(live)
    mark = factories.event_mark()
    session = services.checkout_session_complete(
        session=session, payment_method="pm_delayed_success"
    )
    assert (session.status, session.payment_status) == ("complete", "unpaid")
    assert session.payment_intent.status == "processing"
    assert "checkout.session.completed" in factories.new_event_types(mark)
    mark = factories.event_mark()
    session = services.checkout_session_settle(session=session, succeeded=True)
    assert session.payment_status == "paid"
    assert factories.new_event_types(mark) == [
        "charge.succeeded",
        "checkout.session.async_payment_succeeded",
        "payment_intent.succeeded",
    ]


def test_it_reports_a_failed_delayed_payment(live):
    session = _session(live)
    session = services.checkout_session_complete(
        session=session, payment_method="pm_delayed_failure"
    )
    mark = factories.event_mark()
    session = services.checkout_session_settle(session=session, succeeded=False)
    assert session.payment_status == "unpaid"
    assert factories.new_event_types(mark) == [
        "charge.failed",
        "checkout.session.async_payment_failed",
        "payment_intent.payment_failed",
    ]
    with pytest.raises(InvalidRequestError):
        services.checkout_session_settle(session=session, succeeded=True)


def test_it_creates_a_customer_and_subscription_in_subscription_mode(live):
    session = _session(live, mode="subscription")
    mark = factories.event_mark()
    session = services.checkout_session_complete(session=session, payment_method="pm_card_visa")
    assert (session.status, session.payment_status) == ("complete", "paid")
    assert session.customer is not None
    assert session.subscription.status == "active"
    types = factories.new_event_types(mark)
    assert "customer.created" in types and "customer.subscription.created" in types
    assert "checkout.session.completed" in types


def test_it_activates_a_subscription_when_its_delayed_payment_settles(live):
    session = _session(live, mode="subscription")
    session = services.checkout_session_complete(
        session=session, payment_method="pm_delayed_success"
    )
    assert Subscription.objects.get().status == "incomplete"
    services.checkout_session_settle(session=session, succeeded=True)
    subscription = Subscription.objects.get()
    assert subscription.status == "active"
    assert subscription.latest_invoice.status == "paid"


def test_it_expires_an_open_session(live):
    session = _session(live)
    mark = factories.event_mark()
    session = services.checkout_session_expire(session=session)
    assert session.status == "expired"
    assert factories.new_event_types(mark) == ["checkout.session.expired"]
    with pytest.raises(InvalidRequestError):
        services.checkout_session_complete(session=session, payment_method="pm_card_visa")


def test_it_rejects_bad_sessions(live):
    one_time = factories.price(live, interval="")
    with pytest.raises(InvalidRequestError) as caught:
        services.checkout_session_create(
            environment=live, mode="rent", line_items=[{"price": one_time}]
        )
    assert caught.value.param == "mode"
    with pytest.raises(InvalidRequestError) as caught:
        services.checkout_session_create(
            environment=live, mode="subscription", line_items=[{"price": one_time}]
        )
    assert caught.value.param == "line_items[0][price]"


def test_it_creates_no_customer_for_a_guest_payment(live):
    session = _session(live)
    session = services.checkout_session_complete(session=session, payment_method="pm_card_visa")
    assert session.customer is None
    assert session.payment_intent.customer is None
