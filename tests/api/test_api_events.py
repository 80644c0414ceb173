"""Events over the API: Stripe's envelope, newest first, filtered by type, per environment."""

from __future__ import annotations

from tests.api_client import api_for


def test_it_lists_events_with_the_stripe_envelope(live):
    api = api_for(live)
    customer = api.post("/customers", {"email": "a@example.com"}, idempotency_key="evt-1").json()
    api.post(f"/customers/{customer['id']}", {"name": "Ada"})
    listed = api.get("/events").json()
    assert listed["object"] == "list"
    assert [e["type"] for e in listed["data"]] == ["customer.updated", "customer.created"]
    created = listed["data"][1]
    assert created["object"] == "event"
    assert created["data"]["object"]["id"] == customer["id"]
    assert created["livemode"] is True
    assert created["request"]["idempotency_key"] == "evt-1"
    assert created["request"]["id"].startswith("req_")
    assert listed["data"][0]["data"]["previous_attributes"] == {"name": None}


def test_it_filters_events_by_type_and_prefix(live):
    api = api_for(live)
    customer = api.post("/customers", {}).json()
    api.post(f"/customers/{customer['id']}", {"name": "Ada"})
    api.post("/payment_intents", {"amount": 100, "currency": "usd"})
    only_updates = api.get("/events", type="customer.updated").json()["data"]
    assert [e["type"] for e in only_updates] == ["customer.updated"]
    customers = api.get("/events", type="customer.*").json()["data"]
    assert {e["type"] for e in customers} == {"customer.created", "customer.updated"}


def test_it_retrieves_one_event(live):
    api = api_for(live)
    api.post("/customers", {})
    event = api.get("/events").json()["data"][0]
    assert api.get(f"/events/{event['id']}").json() == event


def test_a_sandbox_key_cannot_see_live_events(live, sandbox):
    api = api_for(live)
    api.post("/customers", {})
    event = api.get("/events").json()["data"][0]
    sandbox_api = api_for(sandbox)
    assert sandbox_api.get(f"/events/{event['id']}").status_code == 404
    assert sandbox_api.get("/events").json()["data"] == []
