"""Stripe's metadata rules, enforced by every service that takes metadata."""

from __future__ import annotations

import pytest

from billing import services
from billing.errors import InvalidRequestError
from billing.models import Customer, Event
from tests import factories


def _create_error(live, metadata) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        services.customer_create(environment=live, metadata=metadata)
    return caught.value


def test_it_accepts_fifty_keys_and_rejects_fifty_one(live):
    services.customer_create(environment=live, metadata={f"k{i}": "v" for i in range(50)})
    error = _create_error(live, {f"k{i}": "v" for i in range(51)})
    assert error.param == "metadata"
    assert "50 keys" in error.message
    assert Customer.objects.count() == 1


def test_it_rejects_a_41_character_key_naming_it(live):
    key = "k" * 41
    error = _create_error(live, {key: "v"})
    assert error.param == f"metadata[{key}]"
    assert "40 characters" in error.message
    services.customer_create(environment=live, metadata={"k" * 40: "v"})


def test_it_rejects_a_501_character_value_naming_its_key(live):
    error = _create_error(live, {"note": "x" * 501})
    assert error.param == "metadata[note]"
    assert "500 characters" in error.message
    services.customer_create(environment=live, metadata={"note": "x" * 500})


def test_it_rejects_non_string_values(live):
    error = _create_error(live, {"count": 3})
    assert error.param == "metadata[count]"
    assert error.to_dict() == {
        "type": "invalid_request_error",
        "code": "parameter_invalid",
        "message": error.message,
        "param": "metadata[count]",
    }


def test_it_rejects_metadata_that_is_not_a_map(live):
    assert _create_error(live, ["a"]).param == "metadata"


def test_it_merges_updates_and_removes_keys_set_to_empty(live):
    customer = factories.customer(live, metadata={"a": "1", "b": "2"})
    customer = services.customer_update(
        customer=customer, changes={"metadata": {"b": "", "c": "3"}}
    )
    assert customer.metadata == {"a": "1", "c": "3"}


def test_it_clears_all_metadata_when_given_an_empty_string(live):
    customer = factories.customer(live, metadata={"a": "1"})
    customer = services.customer_update(customer=customer, changes={"metadata": ""})
    assert customer.metadata == {}


def test_it_counts_keys_after_merging(live):
    customer = factories.customer(live, metadata={f"k{i}": "v" for i in range(50)})
    with pytest.raises(InvalidRequestError) as caught:
        services.customer_update(customer=customer, changes={"metadata": {"one_more": "v"}})
    assert caught.value.param == "metadata"
    # Replacing a key keeps the count at 50.
    services.customer_update(customer=customer, changes={"metadata": {"k1": "", "new": "v"}})
    assert Event.objects.filter(type="customer.updated").count() == 1
