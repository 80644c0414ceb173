"""The event types a workflow can be triggered by, with a sample event for each.

The samples feed the builder's dynamic-field picker, test runs with sample input, and the
save-time check that a `trigger.…` reference names a field that exists for the event type.
They mirror `billing.snapshots` (tests/definition/test_workflow_event_types.py keeps them in step).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

from billing.money import AMOUNT_FIELDS

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
    "customer_balance_transaction": {
        "id": "cbtxn_123",
        "object": "customer_balance_transaction",
        "amount": -500,
        "created": 1700000000,
        "currency": "usd",
        "customer": "cus_123",
        "description": "Goodwill credit",
        "ending_balance": -500,
        "livemode": False,
        "metadata": {},
        "type": "adjustment",
    },
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


# --- names for people ------------------------------------------------------------------------

# Where the event type's words do not read well on their own (Stripe's Dashboard names).
_EVENT_LABEL_OVERRIDES = {
    "charge.dispute.created": "Dispute created",
    "checkout.session.async_payment_succeeded": "Checkout session async payment succeeded",
    "checkout.session.async_payment_failed": "Checkout session async payment failed",
}


def event_label(event_type: str) -> str:
    """ "Customer created" for customer.created, as Stripe's Dashboard names events."""
    if event_type in _EVENT_LABEL_OVERRIDES:
        return _EVENT_LABEL_OVERRIDES[event_type]
    words = event_type.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def event_choices() -> list[tuple[str, str]]:
    """(event type, "Customer created — customer.created") for a select, in type order."""
    return [(e, f"{event_label(e)} — {e}") for e in sorted(EVENT_TYPES)]


# --- field types -------------------------------------------------------------------------------

# The currencies an amount may be in (mirrors billing.validation.CURRENCIES, tested).
CURRENCIES = (
    "usd eur gbp cad aud nzd jpy chf sek nok dkk pln czk huf ron bgn isk "
    "sgd hkd mxn brl inr zar ils aed sar try krw cny thb myr php idr"
).split()

# Fields with a fixed set of values, by object type (mirrors billing.models' choices, tested).
ENUM_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("subscription", "status"): (
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "canceled",
        "unpaid",
    ),
    ("invoice", "status"): ("draft", "open", "paid", "void", "uncollectible"),
    ("payment_intent", "status"): (
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "succeeded",
        "canceled",
    ),
    ("charge", "status"): ("succeeded", "pending", "failed"),
    ("refund", "status"): ("pending", "succeeded", "failed", "canceled"),
    ("refund", "reason"): ("duplicate", "fraudulent", "requested_by_customer"),
    ("dispute", "status"): (
        "warning_needs_response",
        "needs_response",
        "under_review",
        "won",
        "lost",
    ),
    ("dispute", "reason"): (
        "bank_cannot_process",
        "check_returned",
        "credit_not_processed",
        "customer_initiated",
        "debit_not_authorized",
        "duplicate",
        "fraudulent",
        "general",
        "incorrect_account_details",
        "insufficient_funds",
        "product_not_received",
        "product_unacceptable",
        "subscription_canceled",
        "unrecognized",
    ),
    ("checkout.session", "status"): ("open", "complete", "expired"),
    ("checkout.session", "mode"): ("payment", "subscription"),
    ("checkout.session", "payment_status"): ("paid", "unpaid", "no_payment_required"),
    ("price", "type"): ("one_time", "recurring"),
    ("price", "interval"): ("day", "week", "month", "year"),
}
# Integer fields that hold an amount in the minor unit of the sibling `currency`.
MONEY_FIELDS = AMOUNT_FIELDS
# Unix timestamps (seconds); several are null in the samples.
TIMESTAMP_FIELDS = frozenset(
    {
        "created",
        "canceled_at",
        "current_period_end",
        "current_period_start",
        "due_date",
        "ended_at",
        "expires_at",
        "finalized_at",
        "paid_at",
        "voided_at",
    }
)
# Text fields that are null in the samples.
NULLABLE_TEXT_FIELDS = frozenset(
    {
        "account",
        "cancel_url",
        "default_payment_method",
        "description",
        "failure_code",
        "failure_message",
        "line2",
        "nickname",
        "phone",
        "subscription",
    }
)


@dataclass(frozen=True)
class FieldType:
    """What a field of an event holds, for typed condition values.

    kind: integer, number, boolean, text, enum, money (integer minor units of the sibling
    `currency`), timestamp (integer unix seconds), list or object.
    """

    kind: str
    choices: tuple[str, ...] = ()
    # money: the path of the currency beside the amount (trigger.data.object.currency).
    currency_field: str = ""

    @property
    def label(self) -> str:
        return {
            "integer": "a whole number",
            "number": "a number",
            "boolean": "true or false",
            "text": "text",
            "enum": "one of a fixed set of values",
            "money": "an amount (integer, minor units)",
            "timestamp": "a unix timestamp (integer seconds)",
            "list": "a list",
            "object": "an object",
        }[self.kind]


def field_type(event_type: str, field: str) -> FieldType | None:
    """The type of `field` (a `trigger.…` path) for `event_type`; None when not known (a
    free-form hash such as metadata's values aside, an unknown field or event)."""
    if event_type not in EVENT_TYPES or not field.startswith("trigger."):
        return None
    path = field.split(".")[1:]
    sample = shared_sample_event(event_type)
    if path == ["type"]:
        return FieldType("enum", tuple(sorted(EVENT_TYPES)))
    if len(path) < 3 or path[:2] != ["data", "object"]:
        if len(path) == 1 and path[0] in sample:
            return _type_of(path[0], sample[path[0]], "", "")
        return None
    obj_type = EVENT_TYPES[event_type]
    node: Any = sample["data"]["object"]
    parent: Any = None
    for depth, segment in enumerate(path[2:]):
        if depth > 0 and path[2 + depth - 1] == "metadata":
            return FieldType("text") if depth == len(path) - 3 else None  # metadata values
        if depth > 0 and path[2 + depth - 1] in FREE_FORM_FIELDS:
            return None
        if isinstance(node, list):
            if not segment.isdigit() or not node:
                return None
            parent, node = node, node[0]
            continue
        if not isinstance(node, dict) or segment not in node:
            return None
        parent, node = node, node[segment]
    name = path[-1]
    holder_type = parent.get("object") if isinstance(parent, dict) else None
    if name == "interval" and path[-2] == "recurring":
        holder_type = "price"
    currency_field = ""
    if name in MONEY_FIELDS and isinstance(parent, dict) and "currency" in parent:
        currency_field = "trigger." + ".".join(path[:-1] + ["currency"])
    kind_owner = holder_type if isinstance(holder_type, str) else obj_type
    return _type_of(name, node, kind_owner, currency_field)


def _type_of(name: str, value: Any, owner: str, currency_field: str) -> FieldType | None:
    if (owner, name) in ENUM_FIELDS:
        return FieldType("enum", ENUM_FIELDS[(owner, name)])
    if name == "currency":
        return FieldType("enum", tuple(CURRENCIES))
    if currency_field:
        return FieldType("money", currency_field=currency_field)
    if name in TIMESTAMP_FIELDS and (value is None or _is_int(value)):
        return FieldType("timestamp")
    if isinstance(value, bool):
        return FieldType("boolean")
    if _is_int(value):
        return FieldType("integer")
    if isinstance(value, float):
        return FieldType("number")
    if isinstance(value, str) or (value is None and name in NULLABLE_TEXT_FIELDS):
        return FieldType("text")
    if isinstance(value, list):
        return FieldType("list")
    if isinstance(value, dict):
        return FieldType("list") if value.get("object") == "list" else FieldType("object")
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def condition_value_problem(
    field_name: str, ftype: FieldType | None, op: str, value: Any, *, example_currency: str = "usd"
) -> str:
    """Why `value` cannot be compared with a field of type `ftype` by `op` ("" when it can).

    Only literal values are checked: a `{{ … }}` reference (or a list item that is one) is
    known at run time only. `null` may be compared with eq/ne (a nullable field). The API's
    validation and the builder both call this, so a value is refused the same way in each.
    """
    if op in {"in", "not_in"}:
        if isinstance(value, list) and not value:
            return f"'{op}' needs at least one value for {field_name}"
        if not isinstance(value, list) or ftype is None:
            return ""
        for item in value:
            problem = condition_value_problem(field_name, ftype, "eq", item)
            if problem:
                return problem
        return ""
    if ftype is None or _is_reference(value):
        return ""
    if value is None and op in {"eq", "ne"}:
        return ""
    kind = ftype.kind
    got = _shown(value)
    if op in {"contains", "not_contains"} and kind in {"list", "object", "text", "enum"}:
        return ""
    if op == "starts_with":
        return (
            ""
            if kind in {"text", "enum"}
            else f"{field_name} is {ftype.label}: 'starts_with' works on text"
        )
    if kind in {"integer", "timestamp", "money"}:
        if _is_int(value):
            return ""
        if kind == "money":
            from workflows.definition import money

            return (
                f"{field_name} must be an integer (minor units: "
                f"{money.format_money(100000, example_currency)} is 100000), got {got}"
            )
        what = "a unix timestamp in seconds" if kind == "timestamp" else "a whole number"
        return f"{field_name} must be an integer ({what}), got {got}"
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ""
        return f"{field_name} must be a number, got {got}"
    if kind == "boolean":
        if isinstance(value, bool):
            return ""
        return f"{field_name} must be true or false, got {got}"
    if kind == "enum":
        if isinstance(value, str) and value in ftype.choices:
            return ""
        options = ", ".join(ftype.choices[:12]) + (", …" if len(ftype.choices) > 12 else "")
        return f"{field_name} must be one of {options}; got {got}"
    if kind == "text":
        if isinstance(value, str):
            return ""
        return f"{field_name} must be text (a string), got {got}"
    return ""


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _shown(value: Any) -> str:
    """The value in an error message, clipped (a value may be 500 kB of hostile text)."""
    if isinstance(value, str):
        return repr(value[:60] + "…") if len(value) > 60 else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return str(value)[:60]
