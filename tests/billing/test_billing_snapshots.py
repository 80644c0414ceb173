"""snapshot(obj): Stripe's JSON for every billing object."""

from __future__ import annotations

import json

from billing import services
from billing.models import Event
from billing.snapshots import changed_attributes, snapshot
from tests import factories


def test_it_renders_every_object_of_a_full_flow_as_json(live):
    account = services.account_create(environment=live, name="Acme")
    price = factories.price(live, account=account)
    customer = factories.customer(live, account=account, default_payment_method="pm_card_visa")
    subscription = services.subscription_create(customer=customer, items=[{"price": price}])
    invoice = subscription.latest_invoice
    intent = invoice.payment_intent
    charge = intent.latest_charge
    refund = services.refund_create(charge=charge, amount=100)
    dispute = services.dispute_create(charge=charge)
    session = services.checkout_session_create(
        environment=live, mode="subscription", line_items=[{"price": price}], account=account
    )
    objects = [
        account,
        customer,
        price.product,
        price,
        subscription,
        subscription.items.get(),
        invoice,
        invoice.lines.get(),
        intent,
        charge,
        refund,
        dispute,
        session,
    ]
    for obj in objects:
        data = snapshot(obj)
        assert data["id"] == obj.pk and data["object"] == obj.OBJECT
        assert data["livemode"] is True
        json.dumps(data)
    assert snapshot(invoice)["customer"] == customer.pk
    assert snapshot(price)["recurring"] == {"interval": "month", "interval_count": 1}
    assert snapshot(charge)["payment_intent"] == intent.pk
    assert all(isinstance(e.data["object"]["created"], int) for e in Event.objects.all())


def test_it_diffs_nested_hashes_key_by_key_and_lists_whole():
    before = {"a": 1, "m": {"x": "1", "y": "2"}, "items": {"object": "list", "data": [1]}}
    after = {"a": 1, "m": {"x": "1", "z": "3"}, "items": {"object": "list", "data": [2]}}
    assert changed_attributes(before, after) == {
        "m": {"y": "2", "z": None},
        "items": {"object": "list", "data": [1]},
    }


def test_it_renders_choice_fields_a_service_just_set_as_plain_strings(live):
    # The service leaves Invoice.Status.OPEN on the instance; its snapshot must be what the
    # stored event holds, type included: the dispatcher's typed `eq` compares it.
    customer = factories.customer(live)
    draft = services.invoice_create(
        customer=customer, lines=[{"amount": 1000, "currency": "usd", "description": "A"}]
    )
    invoice = services.invoice_finalize(invoice=draft)
    assert type(invoice.status) is not str  # the enum member, until the row is read again

    data = snapshot(invoice)
    assert type(data["status"]) is str
    assert data == json.loads(json.dumps(data))
