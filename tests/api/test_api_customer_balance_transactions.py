"""Customer balance transactions over the API: Stripe's paths, shapes, errors and replays."""

from __future__ import annotations

from billing.models import Customer, CustomerBalanceTransaction
from tests import factories
from tests.api_client import api_for, error_of


def _customer(api) -> dict:
    return api.post("/customers", {"email": "credit@example.com"}).json()


def test_it_credits_lists_and_retrieves_balance_transactions(live):
    api = api_for(live)
    customer = _customer(api)
    path = f"/customers/{customer['id']}/balance_transactions"
    credit = api.post(path, {"amount": -1500, "currency": "usd", "description": "Goodwill"})
    assert credit.status_code == 200, credit.content
    body = credit.json()
    assert body["id"].startswith("cbtxn_")
    assert (body["object"], body["amount"], body["ending_balance"], body["type"]) == (
        "customer_balance_transaction",
        -1500,
        -1500,
        "adjustment",
    )
    assert (body["customer"], body["description"]) == (customer["id"], "Goodwill")
    debit = api.post(path, {"amount": 500, "currency": "usd"}).json()
    assert debit["ending_balance"] == -1000
    assert api.get(f"/customers/{customer['id']}").json()["balance"] == -1000

    listed = api.get(path).json()
    assert (listed["object"], listed["url"]) == ("list", f"/v1{path}")
    assert [t["id"] for t in listed["data"]] == [debit["id"], body["id"]]
    assert api.get(f"{path}/{body['id']}").json() == body


def test_a_transaction_of_another_customer_is_not_found(live):
    api = api_for(live)
    first, second = _customer(api), _customer(api)
    entry = api.post(
        f"/customers/{first['id']}/balance_transactions", {"amount": -100, "currency": "usd"}
    ).json()
    response = api.get(f"/customers/{second['id']}/balance_transactions/{entry['id']}")
    assert response.status_code == 404
    assert error_of(response)["param"] == "id"
    assert api.get(f"/customers/{second['id']}/balance_transactions").json()["data"] == []


def test_bad_input_is_refused_naming_the_param(live):
    api = api_for(live)
    customer = _customer(api)
    path = f"/customers/{customer['id']}/balance_transactions"
    zero = api.post(path, {"amount": 0, "currency": "usd"})
    assert zero.status_code == 400
    assert error_of(zero)["param"] == "amount"
    api.post(path, {"amount": -100, "currency": "usd"})
    other = api.post(path, {"amount": -100, "currency": "eur"})
    assert other.status_code == 400
    assert error_of(other)["param"] == "currency"
    assert Customer.objects.get(pk=customer["id"]).balance == -100


def test_an_idempotency_key_replays_the_credit_once(live):
    api = api_for(live)
    customer = _customer(api)
    path = f"/customers/{customer['id']}/balance_transactions"
    first = api.post(path, {"amount": -300, "currency": "usd"}, idempotency_key="credit-a")
    again = api.post(path, {"amount": -300, "currency": "usd"}, idempotency_key="credit-a")
    assert again.json() == first.json()
    assert CustomerBalanceTransaction.objects.filter(customer_id=customer["id"]).count() == 1
    assert Customer.objects.get(pk=customer["id"]).balance == -300


def test_a_support_key_credits_and_a_viewer_key_cannot(live):
    customer = factories.customer(live)
    path = f"/customers/{customer.pk}/balance_transactions"
    refused = api_for(live, role="viewer").post(path, {"amount": -100, "currency": "usd"})
    assert refused.status_code == 403
    assert not CustomerBalanceTransaction.objects.exists()
    support = api_for(live, role="support").post(path, {"amount": -100, "currency": "usd"})
    assert support.status_code == 200, support.content
    assert api_for(live, role="viewer").get(path).json()["data"][0]["id"] == support.json()["id"]
