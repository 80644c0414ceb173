"""Products and prices over the API."""

from __future__ import annotations

from billing.models import Price
from tests.api_client import api_for, error_of


def test_it_creates_lists_and_retrieves_products(live):
    api = api_for(live)
    product = api.post("/products", {"name": "Pro plan", "metadata": {"tier": "pro"}}).json()
    assert (product["object"], product["name"], product["active"]) == ("product", "Pro plan", True)
    assert api.get(f"/products/{product['id']}").json() == product
    assert [p["id"] for p in api.get("/products", active="true").json()["data"]] == [product["id"]]


def test_it_requires_a_product_name(live):
    response = api_for(live).post("/products", {"description": "no name"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "name"


def test_it_creates_recurring_and_one_off_prices(live):
    api = api_for(live)
    product = api.post("/products", {"name": "Pro"}).json()
    monthly = api.post(
        "/prices",
        {
            "product": product["id"],
            "currency": "EUR",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
        },
    ).json()
    assert monthly["currency"] == "eur"
    assert monthly["recurring"] == {"interval": "month", "interval_count": 1}
    assert monthly["type"] == "recurring"
    once = api.post(
        "/prices", {"product": product["id"], "currency": "usd", "unit_amount": 0}
    ).json()
    assert once["recurring"] is None
    listed = api.get("/prices", product=product["id"]).json()
    assert {p["id"] for p in listed["data"]} == {monthly["id"], once["id"]}
    assert api.get(f"/prices/{once['id']}").json() == once


def test_it_rejects_bad_prices_naming_the_field(live, sandbox):
    api = api_for(live)
    product = api.post("/products", {"name": "Pro"}).json()
    cases = [
        ({"product": product["id"], "currency": "usd", "unit_amount": -5}, "unit_amount", 400),
        ({"product": product["id"], "currency": "usd"}, "unit_amount", 400),
        ({"product": product["id"], "currency": "abc", "unit_amount": 5}, "currency", 400),
        (
            {
                "product": product["id"],
                "currency": "usd",
                "unit_amount": 5,
                "recurring": {"interval": "fortnight"},
            },
            "recurring[interval]",
            400,
        ),
        ({"product": "prod_missing", "currency": "usd", "unit_amount": 5}, "product", 404),
    ]
    for body, param, status in cases:
        response = api.post("/prices", body)
        assert response.status_code == status, (body, response.content)
        assert error_of(response)["param"] == param
    sandbox_product = api_for(sandbox).post("/products", {"name": "Sandbox"}).json()
    response = api.post(
        "/prices", {"product": sandbox_product["id"], "currency": "usd", "unit_amount": 5}
    )
    assert response.status_code == 404
    assert Price.objects.count() == 0
