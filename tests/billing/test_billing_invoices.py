"""Invoices: create, update, finalize, pay, void."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing import services
from billing.errors import BillingError, InvalidRequestError, ProviderError
from billing.models import Charge, Event, Invoice, PaymentIntent
from tests import factories


@pytest.fixture
def paying_customer(live):
    return factories.CustomerFactory(environment=live, default_payment_method="pm_card_visa")


def _invoice(paying_customer, amount: int = 1500) -> Invoice:
    return services.invoice_create(
        customer=paying_customer,
        lines=[
            {"amount": amount, "currency": "usd", "description": "Setup"},
            {"amount": 500, "currency": "usd", "description": "Support", "quantity": 2},
        ],
    )


def test_it_creates_a_draft_with_lines_and_totals(live, paying_customer):
    mark = factories.event_mark()
    invoice = _invoice(paying_customer)
    assert (invoice.status, invoice.total, invoice.amount_due, invoice.currency) == (
        "draft",
        2000,
        2000,
        "usd",
    )
    (event,) = factories.new_events(mark)
    assert event.type == "invoice.created"
    lines = event.data["object"]["lines"]
    assert lines["object"] == "list"
    assert [line["amount"] for line in lines["data"]] == [1500, 500]
    assert lines["data"][1]["quantity"] == 2


def test_it_prices_lines_from_a_price(live, paying_customer):
    price = factories.price(live, unit_amount=700, currency="gbp", interval="")
    invoice = services.invoice_create(
        customer=paying_customer, lines=[{"price": price, "quantity": 3}]
    )
    assert (invoice.total, invoice.currency) == (2100, "gbp")


def test_it_rejects_bad_lines_naming_the_field(live, paying_customer):
    cases = [
        ([], "lines"),
        ([{"amount": -5, "currency": "usd"}], "lines[0][amount]"),
        (
            [{"amount": 5, "currency": "usd"}, {"amount": 5, "currency": "zzz"}],
            "lines[1][currency]",
        ),
        ([{"currency": "usd"}], "lines[0][amount]"),
        ([{"amount": 5, "currency": "usd"}, {"amount": 5, "currency": "eur"}], "lines"),
        ([{"price": "price_missing"}], "lines[0][price]"),
    ]
    for lines, param in cases:
        with pytest.raises(BillingError) as caught:  # an unknown price is NotFoundError
            services.invoice_create(customer=paying_customer, lines=lines)
        assert caught.value.param == param
    assert not Invoice.objects.exists()


def test_it_finalizes_a_draft_with_a_number(live, paying_customer):
    invoice = _invoice(paying_customer)
    mark = factories.event_mark()
    invoice = services.invoice_finalize(invoice=invoice)
    assert invoice.status == "open" and invoice.number.endswith("-0001")
    assert factories.new_event_types(mark) == ["invoice.finalized"]
    with pytest.raises(InvalidRequestError):
        services.invoice_finalize(invoice=invoice)


def test_it_pays_an_open_invoice_with_the_customer_default_method(live, paying_customer):
    invoice = services.invoice_finalize(invoice=_invoice(paying_customer))
    mark = factories.event_mark()
    invoice = services.invoice_pay(invoice=invoice)
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 2000, 0)
    assert invoice.payment_intent.status == "succeeded"
    assert factories.new_event_types(mark) == [
        "charge.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    (paid,) = factories.new_events(mark, "invoice.paid")
    assert paid.data["object"]["paid"] is True
    assert paid.data["object"]["status_transitions"]["paid_at"] is not None


def test_it_records_a_failed_payment_and_keeps_the_invoice_open(live, paying_customer):
    invoice = services.invoice_finalize(invoice=_invoice(paying_customer))
    mark = factories.event_mark()
    invoice = services.invoice_pay(
        invoice=invoice, payment_method="pm_card_chargeDeclinedInsufficientFunds"
    )
    assert (invoice.status, invoice.attempt_count, invoice.amount_paid) == ("open", 1, 0)
    assert factories.new_event_types(mark) == [
        "charge.failed",
        "invoice.payment_failed",
        "payment_intent.created",
        "payment_intent.payment_failed",
    ]
    (failed,) = factories.new_events(mark, "payment_intent.payment_failed")
    error = failed.data["object"]["last_payment_error"]
    assert (error["code"], error["decline_code"]) == ("card_declined", "insufficient_funds")
    # A second attempt re-uses the same payment intent.
    invoice = services.invoice_pay(invoice=invoice, payment_method="pm_card_visa")
    assert invoice.status == "paid" and invoice.attempt_count == 2
    assert PaymentIntent.objects.count() == 1


def test_it_finalizes_a_draft_before_paying_it(live, paying_customer):
    mark = factories.event_mark()
    invoice = services.invoice_pay(invoice=_invoice(paying_customer))
    assert invoice.status == "paid"
    assert "invoice.finalized" in factories.new_event_types(mark)


def test_it_refuses_to_pay_a_paid_or_void_invoice(live, paying_customer):
    paid = services.invoice_pay(invoice=_invoice(paying_customer))
    with pytest.raises(InvalidRequestError):
        services.invoice_pay(invoice=paid)
    void = services.invoice_void(
        invoice=services.invoice_finalize(invoice=_invoice(paying_customer))
    )
    with pytest.raises(InvalidRequestError):
        services.invoice_pay(invoice=void)


def test_it_needs_a_payment_method_when_the_customer_has_none(live):
    customer = factories.customer(live)
    with pytest.raises(InvalidRequestError) as caught:
        services.invoice_pay(invoice=_invoice(customer))
    assert caught.value.param == "payment_method"
    assert Invoice.objects.get().status == "draft"  # the finalize was rolled back too


def test_it_rolls_back_finalize_and_payment_on_a_transient_failure(live, paying_customer):
    invoice = _invoice(paying_customer)
    services.provider_fail_next(environment=live, count=1)
    events = Event.objects.count()
    with pytest.raises(ProviderError) as caught:
        services.invoice_pay(invoice=invoice)
    assert caught.value.retryable
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.payment_intent) == ("draft", "", None)
    assert Event.objects.count() == events
    assert not PaymentIntent.objects.exists() and not Charge.objects.exists()


def test_it_voids_an_open_invoice(live, paying_customer):
    invoice = services.invoice_finalize(invoice=_invoice(paying_customer))
    mark = factories.event_mark()
    invoice = services.invoice_void(invoice=invoice)
    assert invoice.status == "void" and invoice.voided_at is not None
    assert factories.new_event_types(mark) == ["invoice.voided"]


def test_it_updates_a_draft_and_records_previous_attributes(live, paying_customer):
    invoice = _invoice(paying_customer)
    mark = factories.event_mark()
    services.invoice_update(
        invoice=invoice, changes={"description": "March", "metadata": {"po": "7"}}
    )
    (event,) = factories.new_events(mark)
    assert event.type == "invoice.updated"
    assert event.data["previous_attributes"] == {"description": None, "metadata": {"po": None}}


def test_it_only_updates_metadata_once_finalized(live, paying_customer):
    invoice = services.invoice_finalize(invoice=_invoice(paying_customer))
    with pytest.raises(InvalidRequestError) as caught:
        services.invoice_update(invoice=invoice, changes={"description": "late"})
    assert caught.value.param == "description"
    services.invoice_update(invoice=invoice, changes={"metadata": {"po": "8"}})


def test_it_rolls_back_a_payment_when_the_caller_fails_afterwards(live, paying_customer):
    invoice = services.invoice_finalize(invoice=_invoice(paying_customer))
    events = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.invoice_pay(invoice=invoice)
        raise RuntimeError("after the payment")
    invoice.refresh_from_db()
    assert invoice.status == "open"
    assert Event.objects.count() == events and not Charge.objects.exists()


def test_it_waits_for_a_delayed_payment_before_marking_the_invoice_paid(live, paying_customer):
    invoice = services.invoice_pay(
        invoice=_invoice(paying_customer), payment_method="pm_delayed_success"
    )
    assert invoice.status == "open"
    assert invoice.payment_intent.status == "processing"
    with pytest.raises(InvalidRequestError) as caught:
        services.invoice_pay(invoice=invoice, payment_method="pm_card_visa")
    assert caught.value.code == "invoice_payment_processing"
    mark = factories.event_mark()
    services.payment_intent_settle(payment_intent=invoice.payment_intent, succeeded=True)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", 2000)
    assert factories.new_event_types(mark) == [
        "charge.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "payment_intent.succeeded",
    ]
