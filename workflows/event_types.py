"""The event types a workflow can be triggered by, with a sample event for each.

The samples feed the builder's dynamic-field picker, test runs with sample input, and the
save-time check that a `trigger.…` reference names a field that exists for the event type.
They mirror `billing.snapshots` (tests/test_workflow_event_types.py keeps them in step).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

_ADDRESS = {
    "city": "Toronto",
    "country": "CA",
    "line1": "1 Front St",
    "line2": None,
    "postal_code": "M5J 2X6",
    "state": "ON",
}
_PRICE = {
    "id": "price_123",
    "object": "price",
    "active": True,
    "created": 1700000000,
    "currency": "usd",
    "livemode": False,
    "metadata": {},
    "nickname": None,
    "product": "prod_123",
    "recurring": {"interval": "month", "interval_count": 1},
    "type": "recurring",
    "unit_amount": 2000,
}

OBJECT_SAMPLES: dict[str, dict[str, Any]] = {
    "product": {
        "id": "prod_123",
        "object": "product",
        "active": True,
        "created": 1700000000,
        "description": None,
        "livemode": False,
        "metadata": {},
        "name": "Pro plan",
    },
    "price": _PRICE,
    "customer": {
        "id": "cus_123",
        "object": "customer",
        "address": _ADDRESS,
        "balance": 0,
        "created": 1700000000,
        "currency": "usd",
        "deleted": False,
        "description": None,
        "email": "jenny@example.com",
        "invoice_settings": {"default_payment_method": "pm_card_visa"},
        "livemode": False,
        "metadata": {},
        "name": "Jenny Rosen",
        "phone": None,
    },
    "subscription": {
        "id": "sub_123",
        "object": "subscription",
        "cancel_at_period_end": False,
        "canceled_at": None,
        "created": 1700000000,
        "currency": "usd",
        "current_period_end": 1702592000,
        "current_period_start": 1700000000,
        "customer": "cus_123",
        "default_payment_method": None,
        "ended_at": None,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_123",
                    "object": "subscription_item",
                    "created": 1700000000,
                    "livemode": False,
                    "price": _PRICE,
                    "quantity": 1,
                    "subscription": "sub_123",
                }
            ],
            "has_more": False,
            "url": "/v1/subscription_items?subscription=sub_123",
        },
        "latest_invoice": "in_123",
        "livemode": False,
        "metadata": {},
        "status": "active",
    },
    "invoice": {
        "id": "in_123",
        "object": "invoice",
        "amount_due": 2000,
        "amount_paid": 0,
        "amount_remaining": 2000,
        "attempt_count": 0,
        "attempted": False,
        "created": 1700000000,
        "currency": "usd",
        "customer": "cus_123",
        "description": None,
        "due_date": None,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": "il_123",
                    "object": "line_item",
                    "amount": 2000,
                    "currency": "usd",
                    "description": "Pro plan",
                    "invoice": "in_123",
                    "livemode": False,
                    "price": _PRICE,
                    "quantity": 1,
                }
            ],
            "has_more": False,
            "url": "/v1/invoices/in_123/lines",
        },
        "livemode": False,
        "metadata": {},
        "number": "INV-0001",
        "paid": False,
        "payment_intent": "pi_123",
        "status": "open",
        "status_transitions": {"finalized_at": 1700000000, "paid_at": None, "voided_at": None},
        "subscription": "sub_123",
        "subtotal": 2000,
        "total": 2000,
    },
    "payment_intent": {
        "id": "pi_123",
        "object": "payment_intent",
        "amount": 2000,
        "amount_received": 0,
        "canceled_at": None,
        "created": 1700000000,
        "currency": "usd",
        "customer": "cus_123",
        "description": None,
        "invoice": "in_123",
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
        "latest_charge": "ch_123",
        "livemode": False,
        "metadata": {},
        "payment_method": "pm_card_visa",
        "status": "requires_payment_method",
    },
    "charge": {
        "id": "ch_123",
        "object": "charge",
        "amount": 2000,
        "amount_captured": 2000,
        "amount_refunded": 0,
        "created": 1700000000,
        "currency": "usd",
        "customer": "cus_123",
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "invoice": "in_123",
        "livemode": False,
        "metadata": {},
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": "pi_123",
        "payment_method": "pm_card_visa",
        "refunded": False,
        "status": "succeeded",
    },
    "refund": {
        "id": "re_123",
        "object": "refund",
        "amount": 2000,
        "charge": "ch_123",
        "created": 1700000000,
        "currency": "usd",
        "livemode": False,
        "metadata": {},
        "payment_intent": "pi_123",
        "reason": "requested_by_customer",
        "status": "succeeded",
    },
    "dispute": {
        "id": "dp_123",
        "object": "dispute",
        "amount": 2000,
        "charge": "ch_123",
        "created": 1700000000,
        "currency": "usd",
        "livemode": False,
        "metadata": {},
        "payment_intent": "pi_123",
        "reason": "general",
        "status": "needs_response",
    },
    "checkout.session": {
        "id": "cs_123",
        "object": "checkout.session",
        "amount_total": 2000,
        "cancel_url": None,
        "created": 1700000000,
        "currency": "usd",
        "customer": "cus_123",
        "expires_at": 1700086400,
        "line_items": {
            "object": "list",
            "data": [{"price": "price_123", "quantity": 1}],
            "has_more": False,
            "url": "/v1/checkout/sessions/cs_123/line_items",
        },
        "livemode": False,
        "metadata": {},
        "mode": "payment",
        "payment_intent": "pi_123",
        "payment_status": "paid",
        "status": "complete",
        "subscription": None,
        "success_url": "https://example.com/success",
    },
}

# Event type -> the object type in `data.object`.
EVENT_TYPES: dict[str, str] = {
    "customer.created": "customer",
    "customer.updated": "customer",
    "customer.deleted": "customer",
    "customer.subscription.created": "subscription",
    "customer.subscription.updated": "subscription",
    "customer.subscription.deleted": "subscription",
    "invoice.created": "invoice",
    "invoice.updated": "invoice",
    "invoice.finalized": "invoice",
    "invoice.paid": "invoice",
    "invoice.payment_succeeded": "invoice",
    "invoice.payment_failed": "invoice",
    "invoice.voided": "invoice",
    "payment_intent.created": "payment_intent",
    "payment_intent.processing": "payment_intent",
    "payment_intent.succeeded": "payment_intent",
    "payment_intent.payment_failed": "payment_intent",
    "payment_intent.canceled": "payment_intent",
    "charge.pending": "charge",
    "charge.succeeded": "charge",
    "charge.failed": "charge",
    "charge.refunded": "charge",
    "refund.created": "refund",
    "product.created": "product",
    "price.created": "price",
    "charge.dispute.created": "dispute",
    "checkout.session.completed": "checkout.session",
    "checkout.session.expired": "checkout.session",
    "checkout.session.async_payment_succeeded": "checkout.session",
    "checkout.session.async_payment_failed": "checkout.session",
}

# Nested hashes whose keys are the user's own (any key below them may exist).
FREE_FORM_FIELDS = frozenset({"metadata", "outcome", "last_payment_error"})


def is_known(event_type: str) -> bool:
    return event_type in EVENT_TYPES


def has_previous_attributes(event_type: str) -> bool:
    return event_type.endswith(".updated")


def sample_event(event_type: str) -> dict:
    """A sample Stripe envelope for `event_type` (a fresh copy)."""
    return copy.deepcopy(shared_sample_event(event_type))


@functools.cache
def shared_sample_event(event_type: str) -> dict:
    """The sample envelope of `event_type`, built once per process and shared: read it, never
    change it. Validation looks a field up in it for every `{{ trigger.… }}` reference."""
    obj = copy.deepcopy(OBJECT_SAMPLES[EVENT_TYPES[event_type]])
    data: dict[str, Any] = {"object": obj}
    if has_previous_attributes(event_type):
        data["previous_attributes"] = {"metadata": {}}
    return {
        "id": "evt_123",
        "object": "event",
        "type": event_type,
        "created": 1700000000,
        "livemode": False,
        "account": None,
        "data": data,
        "request": {"id": None, "idempotency_key": None},
    }


def trigger_field_problem(event_type: str, path: list[str]) -> str:
    """Why `trigger.<path>` cannot exist for `event_type` ("" when it may exist).

    Checked against the sample: an unknown top-level envelope key, an unknown field of the
    event's object, or previous attributes on an event that has none. Below a field whose
    value is a hash of user keys (metadata) or null in the sample, anything may exist.
    """
    if event_type not in EVENT_TYPES or not path:
        return ""
    sample = shared_sample_event(event_type)
    if path[0] not in sample:
        return f"'{path[0]}' is not a field of a {event_type} event"
    if path[0] != "data" or len(path) < 2:
        return ""
    if path[1] == "previous_attributes":
        if not has_previous_attributes(event_type):
            return f"{event_type} events have no previous_attributes (only *.updated events do)"
        return ""
    if path[1] != "object":
        return f"'data.{path[1]}' is not a field of a {event_type} event"
    node: Any = sample["data"]["object"]
    for depth, segment in enumerate(path[2:]):
        if node is None or (depth > 0 and path[2 + depth - 1] in FREE_FORM_FIELDS):
            return ""
        if isinstance(node, list):
            if not segment.isdigit():
                return f"'{segment}' is not an index of a list in a {event_type} event"
            node = node[0] if node else None
            continue
        if not isinstance(node, dict):
            return ""
        if segment not in node:
            obj_type = EVENT_TYPES[event_type]
            where = ".".join(path[2 : 2 + depth]) or obj_type
            return f"'{segment}' is not a field of {where} in a {event_type} event"
        node = node[segment]
    return ""
