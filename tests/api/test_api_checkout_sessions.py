"""Checkout sessions over the API: create, complete (sync and async), expire."""

from __future__ import annotations

from billing.models import CheckoutSession, Event
from tests.api_client import api_for, error_of


def _price(api, recurring=False):
    product = api.post("/products", {"name": "Widget"}).json()
    body = {"product": product["id"], "currency": "usd", "unit_amount": 700}
    if recurring:
        body["recurring"] = {"interval": "month"}
    return api.post("/prices", body).json()


def _session(api, mode="payment", recurring=False):
    price = _price(api, recurring)
    response = api.post(
        "/checkout/sessions",
        {
            "mode": mode,
            "line_items": [{"price": price["id"], "quantity": 3}],
            "success_url": "https://example.com/ok",
        },
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_it_creates_retrieves_and_lists_a_session(live):
    api = api_for(live)
    session = _session(api)
    assert (session["object"], session["status"], session["amount_total"]) == (
        "checkout.session",
        "open",
        2100,
    )
    assert api.get(f"/checkout/sessions/{session['id']}").json() == session
    assert [s["id"] for s in api.get("/checkout/sessions").json()["data"]] == [session["id"]]


def test_it_completes_a_payment_session(live):
    api = api_for(live)
    session = _session(api)
    done = api.post(
        f"/checkout/sessions/{session['id']}/complete", {"payment_method": "pm_card_visa"}
    )
    assert done.status_code == 200, done.content
    assert (done.json()["status"], done.json()["payment_status"]) == ("complete", "paid")
    assert (
        Event.objects.filter(type="checkout.session.completed", object_id=session["id"]).count()
        == 1
    )


def test_it_completes_a_subscription_session(live):
    api = api_for(live)
    session = _session(api, mode="subscription", recurring=True)
    done = api.post(
        f"/checkout/sessions/{session['id']}/complete", {"payment_method": "pm_card_visa"}
    ).json()
    assert done["subscription"]
    assert api.get(f"/subscriptions/{done['subscription']}").json()["status"] == "active"


def test_an_async_method_leaves_the_payment_processing(live):
    api = api_for(live)
    session = _session(api)
    done = api.post(
        f"/checkout/sessions/{session['id']}/complete", {"payment_method": "pm_delayed_success"}
    ).json()
    assert (done["status"], done["payment_status"]) == ("complete", "unpaid")


def test_it_requires_a_payment_method_to_complete(live):
    api = api_for(live)
    session = _session(api)
    response = api.post(f"/checkout/sessions/{session['id']}/complete", {})
    assert (response.status_code, error_of(response)["param"]) == (400, "payment_method")
    assert CheckoutSession.objects.get(pk=session["id"]).status == "open"


def test_it_expires_a_session_and_then_refuses_to_complete_it(live):
    api = api_for(live)
    session = _session(api)
    expired = api.post(f"/checkout/sessions/{session['id']}/expire").json()
    assert expired["status"] == "expired"
    response = api.post(
        f"/checkout/sessions/{session['id']}/complete", {"payment_method": "pm_card_visa"}
    )
    assert response.status_code == 400
    assert CheckoutSession.objects.get(pk=session["id"]).status == "expired"


def test_it_rejects_an_unknown_mode_and_empty_line_items(live):
    api = api_for(live)
    price = _price(api)
    bad_mode = api.post(
        "/checkout/sessions", {"mode": "setup", "line_items": [{"price": price["id"]}]}
    )
    assert (bad_mode.status_code, error_of(bad_mode)["param"]) == (400, "mode")
    empty = api.post("/checkout/sessions", {"mode": "payment", "line_items": []})
    assert (empty.status_code, error_of(empty)["param"]) == (400, "line_items")
    assert CheckoutSession.objects.count() == 0
