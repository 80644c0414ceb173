"""Invoices over the API: create a draft, update, finalize, pay, void, list."""

from __future__ import annotations

from billing.models import Event, Invoice
from tests.api_client import api_for, error_of


def _draft(api, **extra):
    customer = api.post("/customers", {"email": "inv@example.com"}).json()
    body = {
        "customer": customer["id"],
        "lines": [{"amount": 1200, "currency": "usd", "description": "Setup", "quantity": 1}],
        **extra,
    }
    response = api.post("/invoices", body)
    assert response.status_code == 200, response.content
    return customer, response.json()


def test_it_creates_a_draft_invoice_with_lines(live):
    api = api_for(live)
    _, invoice = _draft(api)
    assert (invoice["object"], invoice["status"], invoice["total"]) == ("invoice", "draft", 1200)
    assert invoice["lines"]["data"][0]["description"] == "Setup"
    assert Event.objects.filter(type="invoice.created", object_id=invoice["id"]).exists()


def test_it_updates_finalizes_and_pays_an_invoice(live):
    api = api_for(live)
    customer, invoice = _draft(api)
    updated = api.post(f"/invoices/{invoice['id']}", {"description": "March"}).json()
    assert updated["description"] == "March"
    finalized = api.post(f"/invoices/{invoice['id']}/finalize").json()
    assert finalized["status"] == "open"
    paid = api.post(f"/invoices/{invoice['id']}/pay", {"payment_method": "pm_card_visa"}).json()
    assert (paid["status"], paid["amount_paid"]) == ("paid", 1200)
    assert api.get(f"/invoices/{invoice['id']}").json() == paid
    listed = api.get("/invoices", customer=customer["id"], status="paid").json()
    assert [i["id"] for i in listed["data"]] == [invoice["id"]]
    assert Event.objects.filter(type="invoice.paid", object_id=invoice["id"]).count() == 1


def test_a_declined_payment_leaves_the_invoice_open(live):
    api = api_for(live)
    _, invoice = _draft(api)
    api.post(f"/invoices/{invoice['id']}/finalize")
    response = api.post(
        f"/invoices/{invoice['id']}/pay",
        {"payment_method": "pm_card_chargeDeclinedInsufficientFunds"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "open"
    assert Event.objects.filter(type="invoice.payment_failed", object_id=invoice["id"]).count() == 1


def test_it_voids_an_open_invoice_and_refuses_to_pay_it_afterwards(live):
    api = api_for(live)
    _, invoice = _draft(api)
    api.post(f"/invoices/{invoice['id']}/finalize")
    assert api.post(f"/invoices/{invoice['id']}/void").json()["status"] == "void"
    response = api.post(f"/invoices/{invoice['id']}/pay", {"payment_method": "pm_card_visa"})
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"
    assert Invoice.objects.get(pk=invoice["id"]).status == "void"


def test_it_rejects_bad_lines_naming_them(live):
    api = api_for(live)
    customer = api.post("/customers", {}).json()
    before = Invoice.objects.count()
    negative = api.post(
        "/invoices", {"customer": customer["id"], "lines": [{"amount": -1, "currency": "usd"}]}
    )
    assert (negative.status_code, error_of(negative)["param"]) == (400, "lines[0][amount]")
    no_lines = api.post("/invoices", {"customer": customer["id"]})
    assert (no_lines.status_code, error_of(no_lines)["param"]) == (400, "lines")
    unknown_customer = api.post(
        "/invoices", {"customer": "cus_nope", "lines": [{"amount": 1, "currency": "usd"}]}
    )
    assert (unknown_customer.status_code, error_of(unknown_customer)["param"]) == (404, "customer")
    assert Invoice.objects.count() == before


def test_a_support_key_cannot_finalize(live):
    api = api_for(live)
    _, invoice = _draft(api)
    response = api_for(live, "support").post(f"/invoices/{invoice['id']}/finalize")
    assert response.status_code == 403
    assert Invoice.objects.get(pk=invoice["id"]).status == "draft"
