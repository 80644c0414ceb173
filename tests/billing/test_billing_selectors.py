"""Reads are scoped to one environment."""

from __future__ import annotations

import pytest

from billing import selectors, services
from billing.errors import NotFoundError
from billing.models import Customer
from tests import factories


def test_it_finds_an_object_in_its_environment(live):
    customer = factories.customer(live)
    assert selectors.get_object(Customer, live, customer.id) == customer


def test_it_hides_another_environment_objects(live, sandbox):
    customer = factories.customer(live)
    with pytest.raises(NotFoundError) as caught:
        selectors.get_object(Customer, sandbox, customer.id, param="customer")
    error = caught.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "customer")
    assert customer.id in error.message
    assert list(selectors.objects_in(Customer, sandbox)) == []


def test_it_scopes_events_to_the_environment(live, sandbox):
    factories.customer(live)
    event = selectors.events_in(live).get()
    assert selectors.get_event(live, event.id) == event
    with pytest.raises(NotFoundError):
        selectors.get_event(sandbox, event.id)


def test_it_refuses_objects_of_another_environment_in_services(live, sandbox):
    customer = factories.customer(live)
    with pytest.raises(NotFoundError) as caught:
        services.payment_intent_create(
            environment=sandbox, amount=100, currency="usd", customer=customer
        )
    assert caught.value.param == "customer"
