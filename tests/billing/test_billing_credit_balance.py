"""Customer balance transactions (Stripe's credits and debits of a customer's balance)."""

from __future__ import annotations

import pytest

from billing import services
from billing.errors import InvalidRequestError
from billing.models import CustomerBalanceTransaction
from tests import factories


def test_a_credit_lowers_the_balance_and_records_customer_updated(live):
    customer = factories.customer(live)
    mark = factories.event_mark()
    entry = services.customer_balance_transaction_create(
        customer=customer, amount=-500, currency="USD", description="Goodwill"
    )
    customer.refresh_from_db()
    assert entry.id.startswith("cbtxn_")
    assert (entry.amount, entry.currency, entry.ending_balance, entry.type) == (
        -500,
        "usd",
        -500,
        "adjustment",
    )
    assert (customer.balance, customer.currency) == (-500, "usd")
    (updated,) = factories.new_events(mark)
    assert updated.type == "customer.updated"
    assert updated.data["object"]["balance"] == -500
    assert updated.data["previous_attributes"] == {"balance": 0, "currency": None}

    debit = services.customer_balance_transaction_create(
        customer=customer, amount=200, currency="usd"
    )
    customer.refresh_from_db()
    assert (debit.ending_balance, customer.balance) == (-300, -300)


def test_a_repeated_idempotency_key_replays_the_transaction_and_moves_the_balance_once(live):
    customer = factories.customer(live)
    first = services.customer_balance_transaction_create(
        customer=customer, amount=-700, currency="eur", idempotency_key="credit-1"
    )
    again = services.customer_balance_transaction_create(
        customer=customer, amount=-700, currency="eur", idempotency_key="credit-1"
    )
    customer.refresh_from_db()
    assert again.pk == first.pk
    assert customer.balance == -700
    assert CustomerBalanceTransaction.objects.filter(customer=customer).count() == 1


def test_another_currency_than_the_customer_s_is_refused_naming_currency(live):
    customer = factories.customer(live)
    services.customer_balance_transaction_create(customer=customer, amount=-100, currency="usd")
    with pytest.raises(InvalidRequestError) as caught:
        services.customer_balance_transaction_create(customer=customer, amount=-100, currency="eur")
    assert caught.value.param == "currency"
    assert "usd" in caught.value.message
    customer.refresh_from_db()
    assert customer.balance == -100
    assert CustomerBalanceTransaction.objects.filter(customer=customer).count() == 1


@pytest.mark.parametrize("amount", [0, True, "5"])
def test_an_amount_of_zero_or_not_a_whole_number_is_refused_naming_amount(live, amount):
    customer = factories.customer(live)
    mark = factories.event_mark()
    with pytest.raises(InvalidRequestError) as caught:
        services.customer_balance_transaction_create(
            customer=customer, amount=amount, currency="usd"
        )
    assert caught.value.param == "amount"
    customer.refresh_from_db()
    assert (customer.balance, customer.currency) == (0, "")
    assert factories.new_events(mark) == []
