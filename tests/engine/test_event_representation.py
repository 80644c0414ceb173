"""One representation of an event: the dispatcher matches what is stored and what the API returns.

The dispatcher evaluates trigger conditions inside the transaction that records the event, on
the snapshot still in memory. For every event type the billing services emit, these tests
record real events through the services and check, at that very moment, that a workflow whose
trigger condition is `eq` on each field's stored value (the event row read back, as
`GET /api/v1/events` returns it) is matched by the real dispatcher.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import TestCase

from billing import services
from billing.events import event_envelope
from billing.models import Environment, Event
from tests import factories
from tests.engine.test_engine_executor import drain
from tests.workers import qclusters, wait_for
from workflows import services as workflow_services
from workflows.definition.event_types import EVENT_TYPES
from workflows.engine.conditions import evaluate
from workflows.engine.dispatch import dispatch_recorded_event
from workflows.models import Run

# --- the checking dispatcher ---------------------------------------------------------------------


@dataclass
class Check:
    event_id: str
    fields: dict
    matched: bool
    mismatched: dict  # path -> (stored value, type the dispatcher saw)
    plain_json: bool  # the envelope evaluated is its own JSON round trip, type for type


# The event type under test, and what the dispatcher found for each event of that type.
_target: dict = {"type": None}
_checks: list[Check] = []


def scalar_fields(obj: dict, prefix: str = "trigger.data.object") -> dict:
    """Every string, number and boolean of an object, by path (nested hashes included;
    lists such as invoice lines are left out: a condition names a field, not an index)."""
    fields: dict = {}
    for key, value in obj.items():
        path = f"{prefix}.{key}"
        if isinstance(value, dict) and value.get("object") != "list":
            fields.update(scalar_fields(value, path))
        elif isinstance(value, str | int | bool):
            fields[path] = value
    return fields


def _definition(event: Event, fields: dict) -> dict:
    return {
        "name": f"{event.type} {event.pk}",
        "trigger": {
            "type": "event",
            "event": event.type,
            "accounts": "all",
            "conditions": {
                "all": [
                    {"field": path, "op": "eq", "value": value} for path, value in fields.items()
                ]
            },
        },
        "steps": [
            {
                "id": "seen",
                "type": "condition",
                "condition": {"field": "trigger.data.object.id", "op": "exists"},
            }
        ],
    }


def checking_dispatcher(event: Event) -> list[int]:
    """The real dispatcher, called where billing calls it; for an event of the type under test
    it first activates a workflow whose conditions are the stored event's own values."""
    if event.type != _target["type"]:
        return dispatch_recorded_event(event)
    # Read back in the recording transaction: the JSON the database holds for this event.
    stored = Event.objects.get(pk=event.pk).data["object"]
    fields = scalar_fields(stored)
    workflow = factories.workflow_active(event.environment, _definition(event, fields))
    run_ids = dispatch_recorded_event(event)
    matched = Run.objects.filter(pk__in=run_ids, workflow=workflow).exists()
    # Later events of the type are checked by their own workflow only.
    workflow_services.workflow_deactivate(workflow=workflow)
    envelope = {"trigger": event_envelope(event)}
    mismatched = {
        path: (value, type(_value_at(envelope, path)).__name__)
        for path, value in fields.items()
        if not evaluate({"field": path, "op": "eq", "value": value}, envelope)
    }
    plain_json = _typed(envelope) == _typed(json.loads(json.dumps(envelope)))
    _checks.append(Check(event.pk, fields, matched, mismatched, plain_json))
    return run_ids


def _value_at(context: dict, path: str):
    node = context
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# --- producing every event type through the services ----------------------------------------------


def _customer(env: Environment):
    return factories.customer(
        env,
        name="Jenny Rosen",
        phone="+15555550100",
        description="Gold",
        address={"line1": "1 Front St", "city": "Toronto", "country": "CA", "postal_code": "M5J"},
        metadata={"tier": "gold"},
        default_payment_method="pm_card_visa",
    )


def _intent(env: Environment, payment_method: str = "", confirm: bool = False):
    return services.payment_intent_create(
        environment=env,
        amount=5000,
        currency="usd",
        customer=_customer(env),
        payment_method=payment_method,
        description="Order 42",
        metadata={"order": "42"},
        confirm=confirm,
    )


def _invoice(env: Environment, *, finalize: bool = False):
    invoice = services.invoice_create(
        customer=_customer(env),
        lines=[{"amount": 1500, "currency": "usd", "description": "Setup"}],
        description="Setup fee",
        metadata={"project": "p1"},
    )
    return services.invoice_finalize(invoice=invoice) if finalize else invoice


def _subscription(env: Environment):
    price = factories.price(env)
    return services.subscription_create(
        customer=_customer(env), items=[{"price": price}], metadata={"plan": "pro"}
    )


def _session(env: Environment, payment_method: str = ""):
    price = factories.price(env, unit_amount=1200, interval="")
    session = services.checkout_session_create(
        environment=env,
        mode="payment",
        line_items=[{"price": price, "quantity": 2}],
        success_url="https://example.com/ok",
        cancel_url="https://example.com/back",
        metadata={"cart": "c1"},
    )
    if payment_method:
        session = services.checkout_session_complete(session=session, payment_method=payment_method)
    return session


def _refund(env: Environment):
    charge = factories.paid_charge(env, customer=_customer(env))
    services.refund_create(charge=charge, amount=100, reason="requested_by_customer")


PRODUCERS: dict[str, Callable[[Environment], object]] = {
    "customer.created": _customer,
    "customer.updated": lambda env: services.customer_update(
        customer=_customer(env), changes={"name": "Jenny R.", "metadata": {"tier": "silver"}}
    ),
    "product.created": lambda env: factories.price(env),
    "price.created": lambda env: factories.price(env, interval="year"),
    "payment_intent.created": _intent,
    "payment_intent.processing": lambda env: _intent(env, "pm_delayed_success", confirm=True),
    "payment_intent.succeeded": lambda env: _intent(env, "pm_card_visa", confirm=True),
    "payment_intent.payment_failed": lambda env: _intent(env, "pm_card_chargeDeclined", True),
    "payment_intent.canceled": lambda env: services.payment_intent_cancel(
        payment_intent=_intent(env)
    ),
    "charge.pending": lambda env: _intent(env, "pm_delayed_success", confirm=True),
    "charge.succeeded": lambda env: _intent(env, "pm_card_visa", confirm=True),
    "charge.failed": lambda env: _intent(env, "pm_card_chargeDeclined", confirm=True),
    "charge.refunded": _refund,
    "refund.created": _refund,
    "charge.dispute.created": lambda env: services.dispute_create(
        charge=factories.paid_charge(env), reason="fraudulent"
    ),
    "invoice.created": _invoice,
    "invoice.updated": lambda env: services.invoice_update(
        invoice=_invoice(env), changes={"description": "Setup fee (revised)"}
    ),
    "invoice.finalized": lambda env: _invoice(env, finalize=True),
    "invoice.paid": lambda env: services.invoice_pay(
        invoice=_invoice(env, finalize=True), payment_method="pm_card_visa"
    ),
    "invoice.payment_succeeded": lambda env: services.invoice_pay(
        invoice=_invoice(env, finalize=True), payment_method="pm_card_visa"
    ),
    "invoice.payment_failed": lambda env: services.invoice_pay(
        invoice=_invoice(env, finalize=True), payment_method="pm_card_chargeDeclined"
    ),
    "invoice.voided": lambda env: services.invoice_void(invoice=_invoice(env, finalize=True)),
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": lambda env: services.subscription_cancel(
        subscription=_subscription(env)
    ),
    "checkout.session.completed": lambda env: _session(env, "pm_card_visa"),
    "checkout.session.expired": lambda env: services.checkout_session_expire(session=_session(env)),
    "checkout.session.async_payment_succeeded": lambda env: services.checkout_session_settle(
        session=_session(env, "pm_delayed_success"), succeeded=True
    ),
    "checkout.session.async_payment_failed": lambda env: services.checkout_session_settle(
        session=_session(env, "pm_delayed_success"), succeeded=False
    ),
}

# In the catalogue for workflows to name, but no billing service deletes a customer.
NOT_EMITTED = {"customer.deleted"}


@pytest.fixture
def checking(settings):
    settings.BILLING_EVENT_DISPATCHER = f"{__name__}.checking_dispatcher"
    # Each checked event activates a workflow of its own.
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_WORKFLOWS": 500, "MAX_ACTIVE_WORKFLOWS": 500}
    _checks.clear()
    yield
    _target["type"] = None
    _checks.clear()


def test_it_produces_every_event_type_of_the_catalogue_that_the_services_emit():
    assert set(PRODUCERS) == set(EVENT_TYPES) - NOT_EMITTED


@pytest.mark.parametrize("event_type", sorted(PRODUCERS))
def test_it_matches_an_eq_condition_on_every_stored_field_of_the_event(live, checking, event_type):
    _target["type"] = event_type
    with TestCase.captureOnCommitCallbacks(execute=True):
        PRODUCERS[event_type](live)

    assert _checks, f"no {event_type} event was recorded"
    for check in _checks:
        assert check.mismatched == {}, f"{event_type}: the dispatcher saw other values"
        assert check.plain_json, f"{event_type}: the dispatcher saw more than plain JSON"
        assert check.matched, f"{event_type}: the workflow on its stored values did not run"


def _typed(value):
    """The value with each leaf's type beside it: an enum member equals its value but is not
    a `str`, which `==` alone does not see."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


# --- the case ----------------------------------------------------------------------------

FINALIZED_OPEN = {
    "name": "Open invoices",
    "trigger": {
        "type": "event",
        "event": "invoice.finalized",
        "accounts": "platform",
        # Stripe calls a finalized invoice "open": there is no "finalized" status.
        "conditions": {
            "all": [{"field": "trigger.data.object.status", "op": "eq", "value": "open"}]
        },
    },
    "steps": [
        {
            "id": "note",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.customer }}",
                "metadata": {"open_invoice": "{{ trigger.data.object.id }}"},
            },
        }
    ],
}


def test_it_runs_an_invoice_finalized_workflow_conditioned_on_status_open(live, alice):
    workflow = factories.workflow_active(live, FINALIZED_OPEN, alice)
    with TestCase.captureOnCommitCallbacks(execute=True):
        invoice = _invoice(live, finalize=True)

    stored = Event.objects.get(type="invoice.finalized", object_id=invoice.pk)
    assert stored.data["object"]["status"] == "open"
    run = Run.objects.get(workflow=workflow)
    assert run.event_id == stored.pk
    drain()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    invoice.customer.refresh_from_db()
    assert invoice.customer.metadata["open_invoice"] == invoice.pk


@pytest.mark.postgres
@pytest.mark.workers
def test_workers_run_an_invoice_finalized_workflow_conditioned_on_status_open(
    transactional_db, live, alice
):
    workflow = factories.workflow_active(live, FINALIZED_OPEN, alice)
    with qclusters(count=1, workers=1):
        invoice = _invoice(live, finalize=True)
        wait_for(
            lambda: Run.objects.filter(
                workflow=workflow, status__in=[Run.Status.SUCCEEDED, Run.Status.FAILED]
            ).exists(),
            timeout=45,
        )

    run = Run.objects.get(workflow=workflow)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.event.type == "invoice.finalized"
    assert run.trigger["data"]["object"]["status"] == "open"
    invoice.customer.refresh_from_db()
    assert invoice.customer.metadata["open_invoice"] == invoice.pk


FINALIZE_THEN_CHECK = {
    "name": "Finalize, then check",
    "trigger": {"type": "event", "event": "invoice.created", "accounts": "platform"},
    "steps": [
        {
            "id": "finalize",
            "type": "action",
            "action": "invoices.finalize",
            "params": {"invoice": "{{ trigger.data.object.id }}"},
        },
        {
            "id": "is_open",
            "type": "condition",
            "condition": {"field": "steps.finalize.output.status", "op": "eq", "value": "open"},
        },
        {
            "id": "note",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.customer }}",
                "metadata": {"open_invoice": "{{ steps.finalize.output.id }}"},
            },
        },
    ],
}


def test_a_condition_on_a_status_an_earlier_step_just_changed_sees_the_stored_value(live, alice):
    # The same snapshot is the action's output, which later steps of the execution read
    # from memory, and which the run page shows from the database.
    workflow = factories.workflow_active(live, FINALIZE_THEN_CHECK, alice)
    with TestCase.captureOnCommitCallbacks(execute=True):
        invoice = _invoice(live)
    drain()

    run = Run.objects.get(workflow=workflow)
    assert run.status == Run.Status.SUCCEEDED
    assert run.stop_reason == ""
    invoice.customer.refresh_from_db()
    assert invoice.customer.metadata["open_invoice"] == invoice.pk
