"""Bad input gets a 4xx with Stripe's error envelope naming the field, and nothing is written."""

from __future__ import annotations

import pytest

from billing.models import Customer, Event, IdempotencyRecord, PaymentIntent, Price, Product
from tests.api_client import Api, api_for, error_of


def _nothing_written() -> tuple:
    return (
        Customer.objects.count(),
        PaymentIntent.objects.count(),
        Product.objects.count(),
        Price.objects.count(),
        Event.objects.count(),
        IdempotencyRecord.objects.count(),
    )


def _bad(response, param, status=400, type="invalid_request_error"):
    assert response.status_code == status, response.content
    error = error_of(response)
    assert error["type"] == type
    assert error["param"] == param
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"currency": "usd"}, "amount"),  # missing
        ({"amount": 100}, "currency"),  # missing
        ({"amount": "lots", "currency": "usd"}, "amount"),  # mistyped
        ({"amount": 10.5, "currency": "usd"}, "amount"),  # not an integer
        ({"amount": -100, "currency": "usd"}, "amount"),  # negative
        ({"amount": 10**20, "currency": "usd"}, "amount"),  # beyond any column
        ({"amount": 100, "currency": "dollars"}, "currency"),  # not a code
        ({"amount": 100, "currency": "xyz"}, "currency"),  # unknown currency
        ({"amount": 100, "currency": "usd", "customer": "cus_nope"}, "customer"),  # unknown id
        ({"amount": 100, "currency": "usd", "colour": "red"}, "colour"),  # unknown field
        ({"amount": 100, "currency": "usd", "metadata": "x"}, "metadata"),  # mistyped
        ({"amount": 100, "currency": "usd", "metadata": {"a": 1}}, "metadata[a]"),
        (
            {"amount": 100, "currency": "usd", "metadata": {f"k{i}": "v" for i in range(51)}},
            "metadata",
        ),
        ({"amount": 100, "currency": "usd", "metadata": {"k" * 41: "v"}}, f"metadata[{'k' * 41}]"),
        ({"amount": 100, "currency": "usd", "metadata": {"k": "v" * 501}}, "metadata[k]"),
    ],
)
def test_it_rejects_bad_payment_intent_input(live, body, param):
    api = api_for(live)
    before = _nothing_written()
    response = api.post("/payment_intents", body, idempotency_key="bad-input")
    assert 400 <= response.status_code < 500
    _bad(response, param, status=response.status_code)
    assert _nothing_written() == before


def test_it_names_the_missing_field_as_stripe_does(live):
    error = _bad(api_for(live).post("/payment_intents", {"currency": "usd"}), "amount")
    assert error["code"] == "parameter_missing"


def test_it_names_nested_fields(live):
    api = api_for(live)
    customer = api.post("/customers", {}).json()
    before = _nothing_written()
    response = api.post("/subscriptions", {"customer": customer["id"], "items": [{"quantity": 1}]})
    _bad(response, "items[0][price]")
    response = api.post(
        "/subscriptions", {"customer": customer["id"], "items": [{"price": "price_nope"}]}
    )
    _bad(response, "items[0][price]", status=404)
    assert _nothing_written() == before


def test_it_rejects_a_metadata_update_over_the_limits(live):
    api = api_for(live)
    customer = api.post("/customers", {"metadata": {"a": "1"}}).json()
    before = _nothing_written()
    _bad(
        api.post(f"/customers/{customer['id']}", {"metadata": {"k" * 41: "v"}}),
        f"metadata[{'k' * 41}]",
    )
    too_many = {f"k{i}": "v" for i in range(50)}
    _bad(api.post(f"/customers/{customer['id']}", {"metadata": too_many}), "metadata")
    assert _nothing_written() == before
    assert Customer.objects.get(pk=customer["id"]).metadata == {"a": "1"}


def test_it_rejects_malformed_json(live):
    before = _nothing_written()
    response = api_for(live).post(
        "/customers", raw='{"email": "a@example.com"', idempotency_key="j"
    )
    error = _bad(response, None)
    assert error["code"] == "invalid_json"
    assert _nothing_written() == before


def test_it_rejects_a_body_that_is_not_an_object(live):
    response = api_for(live).post("/customers", raw='["a", "b"]')
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"
    assert Customer.objects.count() == 0


def test_it_requires_a_body_where_fields_are_required(live):
    response = api_for(live).post("/payment_intents", raw="")
    assert response.status_code == 400
    assert error_of(response)["code"] == "parameter_missing"


def test_it_rejects_a_wrong_key_with_the_envelope(live):
    response = Api("sk_live_wrong").post("/payment_intents", {"amount": 100, "currency": "usd"})
    _bad(response, None, status=401, type="authentication_error")
    assert PaymentIntent.objects.count() == 0


def test_it_answers_404_for_an_unknown_route(live):
    api = api_for(live)
    for response in (api.get("/nothing_here"), api.post("/customers/cus_x/explode", {})):
        error = _bad(response, None, status=404)
        assert error["code"] == "resource_missing"


def test_it_answers_405_for_a_wrong_method(live):
    response = api_for(live).delete("/customers")
    error = _bad(response, None, status=405)
    assert error["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_it_answers_404_for_an_unknown_id_on_every_resource(live):
    api = api_for(live)
    for path in [
        "/customers/cus_x",
        "/products/prod_x",
        "/prices/price_x",
        "/subscriptions/sub_x",
        "/invoices/in_x",
        "/payment_intents/pi_x",
        "/charges/ch_x",
        "/refunds/re_x",
        "/disputes/dp_x",
        "/checkout/sessions/cs_x",
        "/events/evt_x",
    ]:
        _bad(api.get(path), "id", status=404)
    _bad(api.post("/invoices/in_x/finalize"), "id", status=404)
    _bad(api.post("/refunds", {"charge": "ch_x"}), "charge", status=404)


def test_it_answers_413_for_an_oversized_body(live, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_for(live).post("/customers", {"description": "x" * 2000})
    _bad(response, None, status=413)
    assert Customer.objects.count() == 0


def test_it_rejects_invalid_utf8_and_null_bodies(live):
    api = api_for(live)
    not_utf8 = api.client.post(
        "/api/v1/customers",
        b"\xff\xfe{",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.raw_key}"},
    )
    assert error_of(not_utf8)["code"] == "invalid_json"
    null = api.post("/customers", raw="null")
    assert null.status_code == 400
    assert Customer.objects.count() == 0
