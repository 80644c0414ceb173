"""Customers over the API: create, retrieve, update (Stripe's metadata merge), list."""

from __future__ import annotations

from billing.models import Customer, Event
from tests.api_client import api_for, error_of


def test_it_creates_a_customer_and_records_the_event(live):
    api = api_for(live)
    response = api.post(
        "/customers",
        {"email": "ada@example.com", "name": "Ada", "metadata": {"plan": "gold"}},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "customer"
    assert body["id"].startswith("cus_")
    assert (body["email"], body["name"], body["metadata"]) == (
        "ada@example.com",
        "Ada",
        {"plan": "gold"},
    )
    assert body["livemode"] is True
    customer = Customer.objects.get(pk=body["id"])
    assert customer.environment == live
    event = Event.objects.get(type="customer.created", object_id=body["id"])
    assert event.request_id.startswith("req_")


def test_it_retrieves_a_customer(live):
    api = api_for(live)
    created = api.post("/customers", {"email": "bo@example.com"}).json()
    response = api.get(f"/customers/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_it_updates_a_customer_merging_metadata(live):
    api = api_for(live)
    created = api.post(
        "/customers", {"email": "a@example.com", "metadata": {"a": "1", "b": "2"}}
    ).json()
    response = api.post(
        f"/customers/{created['id']}",
        {"email": "new@example.com", "metadata": {"b": "", "c": "3"}},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == "new@example.com"
    assert body["metadata"] == {"a": "1", "c": "3"}
    event = Event.objects.get(type="customer.updated", object_id=created["id"])
    assert event.data["previous_attributes"]["email"] == "a@example.com"


def test_it_lists_customers_newest_first_with_cursors(live):
    api = api_for(live)
    ids = [api.post("/customers", {"email": f"c{i}@example.com"}).json()["id"] for i in range(5)]
    first = api.get("/customers", limit=2).json()
    assert first["object"] == "list"
    # Stripe's path, relative to a client's api_base (the origin plus /api): see docs/api.md.
    assert first["url"] == "/v1/customers"
    assert first["has_more"] is True
    assert [c["id"] for c in first["data"]] == [ids[4], ids[3]]
    second = api.get("/customers", limit=2, starting_after=ids[3]).json()
    assert [c["id"] for c in second["data"]] == [ids[2], ids[1]]
    last = api.get("/customers", limit=2, starting_after=ids[1]).json()
    assert [c["id"] for c in last["data"]] == [ids[0]]
    assert last["has_more"] is False
    back = api.get("/customers", limit=2, ending_before=ids[1]).json()
    assert [c["id"] for c in back["data"]] == [ids[3], ids[2]]
    assert back["has_more"] is True


def test_it_filters_customers_by_email(live):
    api = api_for(live)
    wanted = api.post("/customers", {"email": "find@example.com"}).json()
    api.post("/customers", {"email": "other@example.com"})
    body = api.get("/customers", email="find@example.com").json()
    assert [c["id"] for c in body["data"]] == [wanted["id"]]


def test_it_rejects_a_limit_out_of_range(live):
    response = api_for(live).get("/customers", limit=101)
    assert response.status_code == 400
    assert error_of(response)["param"] == "limit"


def test_it_rejects_a_cursor_from_another_environment(live, sandbox):
    live_customer = api_for(live).post("/customers", {"email": "x@example.com"}).json()
    response = api_for(sandbox).get("/customers", starting_after=live_customer["id"])
    assert response.status_code == 400
    assert error_of(response)["param"] == "starting_after"


def test_it_answers_404_naming_the_id_for_an_unknown_customer(live):
    response = api_for(live).get("/customers/cus_doesnotexist")
    assert response.status_code == 404
    error = error_of(response)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "resource_missing",
        "id",
    )


def test_it_takes_an_address_and_a_default_payment_method(live):
    api = api_for(live)
    body = api.post(
        "/customers",
        {
            "address": {"city": "Lyon", "country": "fr"},
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        },
    ).json()
    assert body["address"]["city"] == "Lyon"
    assert body["address"]["country"] == "FR"
    assert body["invoice_settings"] == {"default_payment_method": "pm_card_visa"}
    bad = api.post("/customers", {"address": {"planet": "Mars"}})
    assert (bad.status_code, error_of(bad)["param"]) == (400, "address[planet]")
    assert Customer.objects.count() == 1
