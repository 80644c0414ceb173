"""Known event types and their samples, kept in step with the real events."""

from __future__ import annotations

from billing import services
from billing.events import event_envelope
from tests import factories
from workflows.definition import event_types


def keys_match(sample, real, path="") -> list[str]:
    """Paths where the real data has a key the sample lacks, or the other way round."""
    problems = []
    if isinstance(sample, dict) and isinstance(real, dict):
        if sample.get("object") == "list" or path.endswith("metadata"):
            return []
        for key in set(sample) | set(real):
            if key not in sample or key not in real:
                problems.append(f"{path}.{key}")
            else:
                problems += keys_match(sample[key], real[key], f"{path}.{key}")
    return problems


def test_it_mirrors_the_real_customer_event(live):
    mark = factories.event_mark()
    customer = factories.customer(live, address={"country": "US", "city": "Austin"})
    services.customer_update(customer=customer, changes={"name": "New"})
    created, updated = factories.new_events(mark)
    real = event_envelope(created)
    assert keys_match(event_types.sample_event("customer.created"), real) == []
    assert "previous_attributes" in event_types.sample_event("customer.updated")["data"]
    assert "previous_attributes" in event_envelope(updated)["data"]


def test_it_mirrors_every_real_object_snapshot(live):
    mark = factories.event_mark()
    customer = factories.SubscriptionFactory(environment=live).customer
    charge = factories.PaidChargeFactory(environment=live, customer=customer)
    services.refund_create(charge=charge, amount=100)
    services.dispute_create(charge=charge)
    seen = set()
    for event in factories.new_events(mark):
        obj_type = event_types.EVENT_TYPES.get(event.type)
        assert obj_type is not None, f"{event.type} is not a known event type"
        if obj_type in seen:
            continue
        seen.add(obj_type)
        real = event_envelope(event)["data"]["object"]
        assert keys_match(event_types.OBJECT_SAMPLES[obj_type], real) == [], event.type
    assert {
        "customer",
        "subscription",
        "invoice",
        "payment_intent",
        "charge",
        "refund",
        "dispute",
        "product",
        "price",
    } <= seen


def test_it_explains_why_a_trigger_field_cannot_exist():
    problem = event_types.trigger_field_problem
    assert problem("invoice.paid", ["data", "object", "amount_paid"]) == ""
    assert problem("invoice.paid", ["data", "object", "lines", "data", "0", "amount"]) == ""
    assert problem("invoice.paid", ["data", "object", "metadata", "anything"]) == ""
    assert problem("invoice.paid", ["data", "object", "colour"]) == (
        "'colour' is not a field of invoice in a invoice.paid event"
    )
    assert problem("invoice.paid", ["nope"]) == "'nope' is not a field of a invoice.paid event"


def test_it_builds_each_sample_once_and_hands_out_copies():
    shared = event_types.shared_sample_event("customer.updated")
    assert event_types.shared_sample_event("customer.updated") is shared  # once per process
    copy = event_types.sample_event("customer.updated")
    assert copy == shared and copy is not shared
    copy["data"]["object"]["email"] = "changed@example.com"
    assert event_types.sample_event("customer.updated")["data"]["object"]["email"] != (
        "changed@example.com"
    )
