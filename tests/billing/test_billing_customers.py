"""customer_create / customer_update: events, previous_attributes, validation, rollback."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from billing import services
from billing.errors import InvalidRequestError, NotFoundError
from billing.events import event_envelope
from billing.models import Customer, Event
from tests import factories

ADDRESS = {"line1": "1 Front St", "city": "Toronto", "state": "ON", "country": "ca"}


def test_it_creates_a_customer_and_records_customer_created(live):
    mark = factories.event_mark()
    customer = services.customer_create(
        environment=live,
        email="jenny@example.com",
        name="Jenny Rosen",
        address=ADDRESS,
        metadata={"plan": "pro"},
        default_payment_method="pm_card_visa",
        request_id="req_1",
    )
    assert customer.id.startswith("cus_")
    (event,) = factories.new_events(mark)
    envelope = event_envelope(event)
    assert set(envelope) == {
        "id",
        "object",
        "type",
        "created",
        "livemode",
        "account",
        "data",
        "request",
    }
    assert envelope["object"] == "event"
    assert envelope["id"].startswith("evt_")
    assert envelope["type"] == "customer.created"
    assert envelope["livemode"] is True
    assert envelope["account"] is None
    assert envelope["request"] == {"id": "req_1", "idempotency_key": None}
    assert "previous_attributes" not in envelope["data"]
    obj = envelope["data"]["object"]
    assert obj["id"] == customer.id and obj["object"] == "customer"
    assert obj["email"] == "jenny@example.com"
    assert obj["address"]["country"] == "CA" and obj["address"]["line2"] is None
    assert obj["invoice_settings"] == {"default_payment_method": "pm_card_visa"}
    assert obj["metadata"] == {"plan": "pro"}
    assert isinstance(obj["created"], int)
    json.dumps(envelope)  # JSON types only


def test_it_marks_sandbox_events_as_not_livemode(sandbox):
    mark = factories.event_mark()
    services.customer_create(environment=sandbox, email="a@example.com")
    (event,) = factories.new_events(mark)
    assert event_envelope(event)["livemode"] is False


def test_it_stamps_the_connected_account_on_events(live):
    account = services.account_create(environment=live, name="Acme Shop", country="us")
    mark = factories.event_mark()
    customer = services.customer_create(environment=live, account=account, email="b@example.com")
    (event,) = factories.new_events(mark)
    assert customer.account == account
    assert event_envelope(event)["account"] == account.id


def test_it_refuses_an_account_of_another_environment(live, sandbox):
    account = services.account_create(environment=sandbox, name="Sandbox shop")
    with pytest.raises(NotFoundError) as caught:
        services.customer_create(environment=live, account=account)
    assert caught.value.param == "account"
    assert not Customer.objects.exists()


def test_it_records_previous_attributes_of_exactly_the_changed_fields(live):
    customer = factories.customer(live, email="old@example.com", name="Jenny", phone="+1555")
    mark = factories.event_mark()
    customer = services.customer_update(
        customer=customer, changes={"email": "new@example.com", "name": "Jenny", "phone": "+1666"}
    )
    (event,) = factories.new_events(mark)
    assert event.type == "customer.updated"
    assert event.data["previous_attributes"] == {"email": "old@example.com", "phone": "+1555"}
    assert event.data["object"]["email"] == "new@example.com"
    assert customer.email == "new@example.com"


def test_it_reports_nested_changes_key_by_key(live):
    customer = factories.customer(live, metadata={"a": "1", "b": "2"}, address=ADDRESS)
    mark = factories.event_mark()
    services.customer_update(
        customer=customer,
        changes={
            "metadata": {"a": "9", "b": "", "c": "3"},
            "address": {**ADDRESS, "city": "Ottawa"},
            "invoice_settings": {"default_payment_method": "pm_card_mastercard"},
        },
    )
    (event,) = factories.new_events(mark)
    assert event.data["previous_attributes"] == {
        "metadata": {"a": "1", "b": "2", "c": None},
        "address": {"city": "Toronto"},
        "invoice_settings": {"default_payment_method": None},
    }
    assert event.data["object"]["metadata"] == {"a": "9", "c": "3"}


def test_it_records_no_event_when_nothing_changes(live):
    customer = factories.customer(live, email="same@example.com")
    mark = factories.event_mark()
    services.customer_update(customer=customer, changes={"email": "same@example.com"})
    assert factories.new_events(mark) == []


def test_it_rejects_unknown_fields_and_bad_values_naming_the_param(live):
    customer = factories.customer(live)
    cases = [
        ({"colour": "red"}, "colour"),
        ({"email": "not-an-email"}, "email"),
        ({"name": 42}, "name"),
        ({"address": {"planet": "Mars"}}, "address[planet]"),
        ({"default_payment_method": "pm_nonsense"}, "invoice_settings[default_payment_method]"),
    ]
    for changes, param in cases:
        with pytest.raises(InvalidRequestError) as caught:
            services.customer_update(customer=customer, changes=changes)
        assert caught.value.param == param
        assert caught.value.to_dict()["param"] == param
    assert Event.objects.filter(type="customer.updated").count() == 0


def test_it_rolls_back_the_change_and_the_event_when_the_caller_fails_afterwards(live):
    customer = factories.customer(live, email="before@example.com")
    mark = factories.event_mark()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.customer_update(customer=customer, changes={"email": "after@example.com"})
        raise RuntimeError("boom after the change")
    customer.refresh_from_db()
    assert customer.email == "before@example.com"
    assert factories.new_events(mark) == []
