"""The API driven only through Stripe's official Python library, against a live server.

Each test starts the real HTTP server (pytest-django's `live_server`), makes a key with the
app's own `create_api_key` command, points a `stripe.StripeClient` at the server (`api_base`
is the origin plus `/api`, see docs/api.md) and does everything else through the SDK: its form
bodies, its `expand[0]=…` query arrays, its auto-pagination and its error classes. The database
is only read, to check what the SDK's answers claim.
"""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from billing.models import Charge, Customer, Event, Invoice, Subscription
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server):
    factories.environment("live")
    out = StringIO()
    call_command("create_api_key", "live", "--name", "SDK", stdout=out, stderr=StringIO())
    http = stripe.RequestsClient()
    yield stripe.StripeClient(
        out.getvalue().strip(),
        base_addresses={"api": live_server.url + "/api"},
        http_client=http,
        # A failed request must fail the test, not be retried behind its back.
        max_network_retries=0,
    )
    # Closing the kept-alive HTTP connection ends the server's request thread, and with it that
    # thread's database connection, so the test database can be dropped afterwards.
    http.close()


def test_the_sdk_creates_updates_retrieves_pages_through_and_deletes_customers(client):
    created = [
        client.v1.customers.create(
            params={"email": f"c{i}@example.com", "metadata": {"plan": "pro", "seat": str(i)}}
        )
        for i in range(12)
    ]
    first = created[0]
    assert (first.object, first.email, first.metadata["plan"]) == (
        "customer",
        "c0@example.com",
        "pro",
    )

    updated = client.v1.customers.update(
        first.id, params={"name": "Ada", "metadata": {"plan": "team"}}
    )
    assert (updated.name, updated.metadata["plan"]) == ("Ada", "team")
    assert updated.metadata["seat"] == "0"  # a key not sent is left alone
    assert client.v1.customers.retrieve(first.id).name == "Ada"

    # Five a page: the SDK follows the list's `url` for pages two and three.
    page = client.v1.customers.list(params={"limit": 5})
    assert page.has_more is True
    paged = [customer.id for customer in page.auto_paging_iter()]
    assert paged == [customer.id for customer in reversed(created)]

    deleted = client.v1.customers.delete(first.id)
    assert (deleted.id, deleted.deleted) == (first.id, True)
    assert Customer.objects.get(pk=first.id).deleted is True
    assert Event.objects.filter(type="customer.deleted", object_id=first.id).count() == 1
    remaining = [c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()]
    assert first.id not in remaining and len(remaining) == 11


def test_the_sdk_expands_the_customer_of_a_payment_intent(client):
    customer = client.v1.customers.create(params={"email": "payer@example.com"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
            "expand": ["customer", "latest_charge"],
        }
    )
    assert (intent.status, intent.amount_received) == ("succeeded", 2500)
    assert (intent.customer.object, intent.customer.email) == ("customer", "payer@example.com")
    assert (intent.latest_charge.object, intent.latest_charge.paid) == ("charge", True)

    retrieved = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["customer"]})
    assert retrieved.customer.id == customer.id
    assert isinstance(client.v1.payment_intents.retrieve(intent.id).customer, str)

    listed = client.v1.payment_intents.list(params={"expand": ["data.customer"]})
    assert [item.customer.email for item in listed.data] == ["payer@example.com"]


def test_an_sdk_retry_with_the_same_idempotency_key_returns_the_same_object(client):
    params = {"email": "once@example.com", "metadata": {"source": "retry"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "signup-42"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "signup-42"})
    assert again.id == first.id
    assert Customer.objects.filter(email="once@example.com").count() == 1

    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(
            params={"email": "other@example.com"}, options={"idempotency_key": "signup-42"}
        )


def test_a_declined_confirm_raises_card_error_with_the_decline_code(client):
    intent = client.v1.payment_intents.create(params={"amount": 1200, "currency": "eur"})
    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_chargeDeclinedInsufficientFunds"}
        )
    error = raised.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent.id == intent.id
    assert error.error.payment_intent.status == "requires_payment_method"
    # The decline was recorded, not rolled back with the error.
    assert Charge.objects.get(pk=error.error.charge).status == "failed"
    assert Event.objects.filter(type="payment_intent.payment_failed", object_id=intent.id).exists()


def test_the_sdk_starts_a_subscription_and_pays_an_invoice(client):
    product = client.v1.products.create(params={"name": "Team plan"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month", "interval_count": 1},
        }
    )
    customer = client.v1.customers.create(
        params={
            "email": "team@example.com",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    subscription = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id, "quantity": 3}],
            "expand": ["latest_invoice"],
        }
    )
    assert subscription.status == "active"
    assert (subscription.latest_invoice.status, subscription.latest_invoice.amount_paid) == (
        "paid",
        4500,
    )
    assert Subscription.objects.get(pk=subscription.id).items.get().quantity == 3

    invoice = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "lines": [{"amount": 700, "currency": "usd", "description": "Setup"}],
        }
    )
    finalized = client.v1.invoices.finalize_invoice(invoice.id, params={"expand": ["customer"]})
    assert (finalized.status, finalized.customer.email) == ("open", "team@example.com")
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    assert (paid.status, paid.amount_paid) == ("paid", 700)
    assert Invoice.objects.get(pk=invoice.id).status == "paid"


def test_the_sdk_credits_a_customer_and_lists_its_balance_transactions(client):
    customer = client.v1.customers.create(params={"email": "credit@example.com"})
    credits = client.v1.customers.balance_transactions
    credit = credits.create(
        customer.id,
        params={"amount": -2500, "currency": "usd", "metadata": {"reason": "outage"}},
    )
    assert (credit.object, credit.amount, credit.ending_balance, credit.metadata["reason"]) == (
        "customer_balance_transaction",
        -2500,
        -2500,
        "outage",
    )
    debit = credits.create(customer.id, params={"amount": 1000, "currency": "usd"})
    assert client.v1.customers.retrieve(customer.id).balance == -1500
    assert Customer.objects.get(pk=customer.id).balance == -1500

    paged = [t.id for t in credits.list(customer.id, params={"limit": 1}).auto_paging_iter()]
    assert paged == [debit.id, credit.id]
    assert credits.retrieve(customer.id, credit.id).amount == -2500

    with pytest.raises(stripe.InvalidRequestError) as caught:
        credits.create(customer.id, params={"amount": -100, "currency": "eur"})
    assert caught.value.param == "currency"
