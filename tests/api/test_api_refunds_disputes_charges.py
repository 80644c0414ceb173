"""Charges, refunds and disputes (simulated chargebacks) over the API."""

from __future__ import annotations

from billing.models import Dispute, Event, Refund
from tests.api_client import api_for, error_of


def _paid_intent(api, amount=5000):
    return api.post(
        "/payment_intents",
        {"amount": amount, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
    ).json()


def test_it_lists_and_retrieves_charges(live):
    api = api_for(live)
    intent = _paid_intent(api)
    charge = api.get(f"/charges/{intent['latest_charge']}").json()
    assert (charge["object"], charge["amount"], charge["payment_intent"]) == (
        "charge",
        5000,
        intent["id"],
    )
    assert [c["id"] for c in api.get("/charges").json()["data"]] == [charge["id"]]


def test_it_refunds_part_of_a_charge_then_the_rest(live):
    api = api_for(live)
    intent = _paid_intent(api)
    partial = api.post(
        "/refunds",
        {"charge": intent["latest_charge"], "amount": 2000, "reason": "requested_by_customer"},
    )
    assert partial.status_code == 200, partial.content
    assert (partial.json()["object"], partial.json()["amount"]) == ("refund", 2000)
    rest = api.post("/refunds", {"payment_intent": intent["id"]}).json()
    assert rest["amount"] == 3000
    assert api.get(f"/charges/{intent['latest_charge']}").json()["refunded"] is True
    assert api.get(f"/refunds/{rest['id']}").json() == rest
    listed = api.get("/refunds", charge=intent["latest_charge"]).json()
    assert {r["id"] for r in listed["data"]} == {partial.json()["id"], rest["id"]}
    assert Event.objects.filter(type="refund.created").count() == 2


def test_it_refuses_to_refund_more_than_was_charged(live):
    api = api_for(live)
    intent = _paid_intent(api, amount=1000)
    response = api.post("/refunds", {"charge": intent["latest_charge"], "amount": 1001})
    assert response.status_code == 400
    assert error_of(response)["param"] == "amount"
    negative = api.post("/refunds", {"charge": intent["latest_charge"], "amount": -5})
    assert (negative.status_code, error_of(negative)["param"]) == (400, "amount")
    assert Refund.objects.count() == 0


def test_it_simulates_a_chargeback_and_lists_disputes(live):
    api = api_for(live)
    intent = _paid_intent(api)
    response = api.post("/disputes", {"charge": intent["latest_charge"], "reason": "fraudulent"})
    assert response.status_code == 200, response.content
    dispute = response.json()
    assert (dispute["object"], dispute["reason"], dispute["charge"]) == (
        "dispute",
        "fraudulent",
        intent["latest_charge"],
    )
    assert api.get(f"/disputes/{dispute['id']}").json() == dispute
    assert [d["id"] for d in api.get("/disputes").json()["data"]] == [dispute["id"]]
    assert Event.objects.filter(type="charge.dispute.created").count() == 1
    again = api.post("/disputes", {"charge": intent["latest_charge"]})
    assert (again.status_code, error_of(again)["param"]) == (400, "charge")


def test_support_may_refund_but_not_open_a_dispute(live):
    intent = _paid_intent(api_for(live))
    support = api_for(live, "support")
    assert (
        support.post("/refunds", {"charge": intent["latest_charge"], "amount": 100}).status_code
        == 200
    )
    assert support.post("/disputes", {"charge": intent["latest_charge"]}).status_code == 403
    assert Dispute.objects.count() == 0
