"""Subscriptions over the API: create (first invoice paid or failed), update, cancel."""

from __future__ import annotations

from billing.models import Event, Subscription
from tests.api_client import api_for, error_of


def _setup(api, payment_method="pm_card_visa"):
    customer = api.post("/customers", {"email": "sub@example.com"}).json()
    product = api.post("/products", {"name": "Pro"}).json()
    price = api.post(
        "/prices",
        {
            "product": product["id"],
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
        },
    ).json()
    return customer, price


def _subscribe(api, customer, price, payment_method="pm_card_visa"):
    return api.post(
        "/subscriptions",
        {
            "customer": customer["id"],
            "items": [{"price": price["id"], "quantity": 2}],
            "default_payment_method": payment_method,
        },
    )


def test_it_creates_a_subscription_and_pays_its_first_invoice(live):
    api = api_for(live)
    customer, price = _setup(api)
    response = _subscribe(api, customer, price)
    assert response.status_code == 200, response.content
    sub = response.json()
    assert (sub["object"], sub["status"], sub["customer"]) == (
        "subscription",
        "active",
        customer["id"],
    )
    assert sub["items"]["data"][0]["quantity"] == 2
    invoice = api.get(f"/invoices/{sub['latest_invoice']}").json()
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 4000)
    assert Event.objects.filter(type="customer.subscription.created", object_id=sub["id"]).exists()


def test_a_declined_first_payment_leaves_the_subscription_incomplete(live):
    api = api_for(live)
    customer, price = _setup(api)
    sub = _subscribe(api, customer, price, "pm_card_chargeDeclined").json()
    assert sub["status"] == "incomplete"
    assert api.get(f"/invoices/{sub['latest_invoice']}").json()["status"] == "open"


def test_it_updates_retrieves_and_lists_subscriptions(live):
    api = api_for(live)
    customer, price = _setup(api)
    sub = _subscribe(api, customer, price).json()
    updated = api.post(
        f"/subscriptions/{sub['id']}", {"metadata": {"seats": "2"}, "cancel_at_period_end": True}
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["metadata"] == {"seats": "2"}
    assert updated.json()["cancel_at_period_end"] is True
    assert api.get(f"/subscriptions/{sub['id']}").json() == updated.json()
    listed = api.get("/subscriptions", customer=customer["id"], status="active").json()
    assert [s["id"] for s in listed["data"]] == [sub["id"]]


def test_it_cancels_with_the_cancel_verb(live):
    api = api_for(live)
    customer, price = _setup(api)
    sub = _subscribe(api, customer, price).json()
    canceled = api.post(f"/subscriptions/{sub['id']}/cancel")
    assert canceled.status_code == 200, canceled.content
    assert canceled.json()["status"] == "canceled"
    assert (
        Event.objects.filter(type="customer.subscription.deleted", object_id=sub["id"]).count() == 1
    )
    again = api.post(f"/subscriptions/{sub['id']}/cancel")
    assert again.status_code == 400
    assert error_of(again)["code"] == "subscription_unexpected_state"


def test_delete_cancels_like_stripe(live):
    api = api_for(live)
    customer, price = _setup(api)
    sub = _subscribe(api, customer, price).json()
    response = api.delete(f"/subscriptions/{sub['id']}")
    assert response.status_code == 200
    assert Subscription.objects.get(pk=sub["id"]).status == "canceled"


def test_a_viewer_cannot_cancel(live):
    api = api_for(live)
    customer, price = _setup(api)
    sub = _subscribe(api, customer, price).json()
    response = api_for(live, "viewer").post(f"/subscriptions/{sub['id']}/cancel")
    assert response.status_code == 403
    assert Subscription.objects.get(pk=sub["id"]).status == "active"


def test_it_rejects_an_empty_item_list_and_a_one_off_price(live):
    api = api_for(live)
    customer, _ = _setup(api)
    product = api.post("/products", {"name": "Setup fee"}).json()
    once = api.post(
        "/prices", {"product": product["id"], "currency": "usd", "unit_amount": 100}
    ).json()
    before = Subscription.objects.count()
    empty = api.post("/subscriptions", {"customer": customer["id"], "items": []})
    assert (empty.status_code, error_of(empty)["param"]) == (400, "items")
    one_off = api.post(
        "/subscriptions", {"customer": customer["id"], "items": [{"price": once["id"]}]}
    )
    assert (one_off.status_code, error_of(one_off)["param"]) == (400, "items[0][price]")
    assert Subscription.objects.count() == before
