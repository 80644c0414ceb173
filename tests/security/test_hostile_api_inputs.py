"""Hostile API inputs of issue 14: out-of-range timestamps, wrongly typed amounts and counts,
JSON nested past the parser's limit. Each gets a 400 in the error envelope naming the param (or
`invalid_json`), never a 500 and never a silently coerced value."""

from __future__ import annotations

import json

import pytest

from billing.models import PaymentIntent
from tests.api_client import api_for, error_of

pytestmark = pytest.mark.django_db


# --- item 3: created[gte] / created[lte] out of range -------------------------------------------


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("created[gte]", "99999999999999"),
        ("created[lte]", "-99999999999999"),
        ("created[gte]", "-1"),
        ("created[lte]", "253402300800"),  # one second after 9999-12-31 23:59:59
    ],
)
def test_an_out_of_range_created_timestamp_is_a_400_naming_the_param(
    live, param: str, value: str
) -> None:
    api = api_for(live, role="admin")
    response = api.get("/runs", **{param: value})
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


def test_the_widest_valid_created_range_still_lists_runs(live) -> None:
    api = api_for(live, role="admin")
    response = api.get("/runs", **{"created[gte]": "0", "created[lte]": "253402300799"})
    assert response.status_code == 200, response.content
    assert response.json()["object"] == "list"


# --- item 7: amounts and counts of the wrong type ----------------------------------------------


@pytest.mark.parametrize("amount", [True, False, "250", 250.0, "1e3"])
def test_an_amount_of_the_wrong_type_is_a_400_naming_the_param(live, amount) -> None:
    api = api_for(live, role="admin")
    response = api.post("/payment_intents", {"amount": amount, "currency": "usd"})
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["param"] == "amount"
    assert error["code"] == "parameter_invalid_integer"
    assert not PaymentIntent.objects.filter(environment=live).exists()


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/prices", {"product": "prod_x", "currency": "usd", "unit_amount": "500"}, "unit_amount"),
        ("/prices", {"product": "prod_x", "currency": "usd", "unit_amount": True}, "unit_amount"),
        (
            "/prices",
            {
                "product": "prod_x",
                "currency": "usd",
                "unit_amount": 500,
                "recurring": {"interval": "month", "interval_count": "3"},
            },
            "recurring[interval_count]",
        ),
        (
            "/subscriptions",
            {"customer": "cus_x", "items": [{"price": "p", "quantity": True}]},
            "items[0][quantity]",
        ),
        (
            "/invoices",
            {"customer": "cus_x", "lines": [{"amount": "100", "currency": "usd"}]},
            "lines[0][amount]",
        ),
        (
            "/invoices",
            {"customer": "cus_x", "lines": [{"amount": 100, "quantity": "2"}]},
            "lines[0][quantity]",
        ),
        ("/refunds", {"payment_intent": "pi_x", "amount": True}, "amount"),
        (
            "/checkout/sessions",
            {"mode": "payment", "line_items": [{"price": "p", "quantity": "1"}]},
            "line_items[0][quantity]",
        ),
    ],
)
def test_every_money_and_count_field_refuses_strings_and_booleans(
    live, path: str, body: dict, param: str
) -> None:
    api = api_for(live, role="admin")
    response = api.post(path, body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["param"] == param, error
    assert error["code"] == "parameter_invalid_integer", error


def test_a_real_integer_amount_is_still_accepted(live) -> None:
    api = api_for(live, role="admin")
    response = api.post("/payment_intents", {"amount": 250, "currency": "usd"})
    assert response.status_code == 200, response.content
    assert response.json()["amount"] == 250


# --- item 10: JSON nested 1,000 levels or more -------------------------------------------------


@pytest.mark.parametrize("depth", [990, 1_000, 5_000, 100_000])
def test_json_nested_a_thousand_levels_or_more_is_invalid_json(live, depth: int) -> None:
    api = api_for(live, role="admin")
    raw = '{"email": "deep@example.com", "metadata": ' + "[" * depth + "]" * depth + "}"
    response = api.post("/customers", raw=raw)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json", error
    assert "nested" in error["message"]


def test_json_nested_within_the_limit_reaches_validation(live) -> None:
    api = api_for(live, role="admin")
    body = json.dumps({"email": "x@example.com", "metadata": [[[]]]})
    response = api.post("/customers", raw=body)
    assert response.status_code == 400
    assert error_of(response)["param"] == "metadata"
