"""`snapshot(obj)`: the Stripe JSON of a billing object, as events and the API show it.

Only plain JSON types come out, exactly what `json.loads` of the stored event gives back:
timestamps are unix seconds, foreign keys are ids, choice fields are `str` (not the model's
enum members), nested collections are Stripe lists (`{"object": "list", "data": [...]}`). The
dispatcher matches trigger conditions on this dict in the transaction that records the event,
so a difference from the stored JSON would make a workflow match differently than the run,
the inspector and the API see it (tests/engine/test_event_representation.py checks every
event type).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from billing import models as m


def unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _text(value: str) -> str:
    """A choice field's value as a plain `str`.

    A service that sets `invoice.status = Invoice.Status.OPEN` leaves the enum member on the
    instance until the row is read again; it prints and serialises as "open" but is not of
    type `str`, and the dispatcher's typed `eq` (which evaluates this snapshot in the
    recording transaction) would not match the stored "open". `str()` of a member is its value.
    """
    return str(value)


def stripe_list(items: list[dict], url: str) -> dict:
    return {"object": "list", "data": items, "has_more": False, "url": url}


def _base(obj: m.StripeObject) -> dict[str, Any]:
    return {
        "id": obj.id,
        "object": obj.OBJECT,
        "created": unix(obj.created),
        "livemode": obj.livemode,
    }


def _account(obj: m.Account) -> dict:
    return {
        **_base(obj),
        "business_profile": {"name": obj.name},
        "email": obj.email or None,
        "country": obj.country or None,
        "metadata": dict(obj.metadata),
    }


def _customer(obj: m.Customer) -> dict:
    return {
        **_base(obj),
        "address": obj.address,
        "balance": obj.balance,
        "currency": obj.currency or None,
        "deleted": obj.deleted,
        "description": obj.description or None,
        "email": obj.email or None,
        "invoice_settings": {"default_payment_method": obj.default_payment_method or None},
        "metadata": dict(obj.metadata),
        "name": obj.name or None,
        "phone": obj.phone or None,
    }


def _customer_balance_transaction(obj: m.CustomerBalanceTransaction) -> dict:
    return {
        **_base(obj),
        "amount": obj.amount,
        "currency": obj.currency,
        "customer": obj.customer_id,
        "description": obj.description or None,
        "ending_balance": obj.ending_balance,
        "metadata": dict(obj.metadata),
        "type": _text(obj.type),
    }


def _product(obj: m.Product) -> dict:
    return {
        **_base(obj),
        "active": obj.active,
        "description": obj.description or None,
        "metadata": dict(obj.metadata),
        "name": obj.name,
    }


def _price(obj: m.Price) -> dict:
    recurring = None
    if obj.recurring_interval:
        recurring = {
            "interval": _text(obj.recurring_interval),
            "interval_count": obj.recurring_interval_count,
        }
    return {
        **_base(obj),
        "active": obj.active,
        "currency": obj.currency,
        "metadata": dict(obj.metadata),
        "nickname": obj.nickname or None,
        "product": obj.product_id,
        "recurring": recurring,
        "type": obj.type,
        "unit_amount": obj.unit_amount,
    }


def _subscription_item(obj: m.SubscriptionItem) -> dict:
    return {
        **_base(obj),
        "price": _price(obj.price),
        "quantity": obj.quantity,
        "subscription": obj.subscription_id,
    }


def _subscription(obj: m.Subscription) -> dict:
    items = [_subscription_item(item) for item in obj.items.select_related("price")]
    return {
        **_base(obj),
        "cancel_at_period_end": obj.cancel_at_period_end,
        "canceled_at": unix(obj.canceled_at),
        "currency": obj.currency,
        "current_period_end": unix(obj.current_period_end),
        "current_period_start": unix(obj.current_period_start),
        "customer": obj.customer_id,
        "default_payment_method": obj.default_payment_method or None,
        "ended_at": unix(obj.ended_at),
        "items": stripe_list(items, f"/v1/subscription_items?subscription={obj.id}"),
        "latest_invoice": obj.latest_invoice_id,
        "metadata": dict(obj.metadata),
        "status": _text(obj.status),
    }


def _invoice_line(obj: m.InvoiceLine) -> dict:
    return {
        "id": obj.id,
        "object": obj.OBJECT,
        "amount": obj.amount,
        "currency": obj.currency,
        "description": obj.description or None,
        "invoice": obj.invoice_id,
        "livemode": obj.livemode,
        "price": _price(obj.price) if obj.price_id else None,
        "quantity": obj.quantity,
    }


def _invoice(obj: m.Invoice) -> dict:
    lines = [_invoice_line(line) for line in obj.lines.select_related("price")]
    return {
        **_base(obj),
        "amount_due": obj.amount_due,
        "amount_paid": obj.amount_paid,
        "amount_remaining": obj.amount_remaining,
        "attempt_count": obj.attempt_count,
        "attempted": obj.attempt_count > 0,
        "currency": obj.currency,
        "customer": obj.customer_id,
        "description": obj.description or None,
        "due_date": unix(obj.due_date),
        "lines": stripe_list(lines, f"/v1/invoices/{obj.id}/lines"),
        "metadata": dict(obj.metadata),
        "number": obj.number or None,
        "paid": obj.status == m.Invoice.Status.PAID,
        "payment_intent": obj.payment_intent_id,
        "status": _text(obj.status),
        "status_transitions": {
            "finalized_at": unix(obj.finalized_at),
            "paid_at": unix(obj.paid_at),
            "voided_at": unix(obj.voided_at),
        },
        "subscription": obj.subscription_id,
        "subtotal": obj.subtotal,
        "total": obj.total,
    }


def _payment_intent(obj: m.PaymentIntent) -> dict:
    return {
        **_base(obj),
        "amount": obj.amount,
        "amount_received": obj.amount_received,
        "canceled_at": unix(obj.canceled_at),
        "currency": obj.currency,
        "customer": obj.customer_id,
        "description": obj.description or None,
        "invoice": obj.invoice_id,
        "last_payment_error": obj.last_payment_error,
        "latest_charge": obj.latest_charge_id,
        "metadata": dict(obj.metadata),
        "payment_method": obj.payment_method or None,
        "status": _text(obj.status),
    }


def _charge(obj: m.Charge) -> dict:
    return {
        **_base(obj),
        "amount": obj.amount,
        "amount_captured": obj.amount_captured,
        "amount_refunded": obj.amount_refunded,
        "currency": obj.currency,
        "customer": obj.customer_id,
        "disputed": obj.disputed,
        "failure_code": obj.failure_code or None,
        "failure_message": obj.failure_message or None,
        "invoice": obj.invoice_id,
        "metadata": dict(obj.metadata),
        "outcome": obj.outcome,
        "paid": obj.paid,
        "payment_intent": obj.payment_intent_id,
        "payment_method": obj.payment_method or None,
        "refunded": obj.refunded,
        "status": _text(obj.status),
    }


def _refund(obj: m.Refund) -> dict:
    return {
        **_base(obj),
        "amount": obj.amount,
        "charge": obj.charge_id,
        "currency": obj.currency,
        "metadata": dict(obj.metadata),
        "payment_intent": obj.payment_intent_id,
        "reason": _text(obj.reason) or None,
        "status": _text(obj.status),
    }


def _dispute(obj: m.Dispute) -> dict:
    return {
        **_base(obj),
        "amount": obj.amount,
        "charge": obj.charge_id,
        "currency": obj.currency,
        "metadata": dict(obj.metadata),
        "payment_intent": obj.payment_intent_id,
        "reason": _text(obj.reason),
        "status": _text(obj.status),
    }


def _checkout_session(obj: m.CheckoutSession) -> dict:
    return {
        **_base(obj),
        "amount_total": obj.amount_total,
        "cancel_url": obj.cancel_url or None,
        "currency": obj.currency,
        "customer": obj.customer_id,
        "expires_at": unix(obj.expires_at),
        "line_items": stripe_list(
            [dict(item) for item in obj.line_items], f"/v1/checkout/sessions/{obj.id}/line_items"
        ),
        "metadata": dict(obj.metadata),
        "mode": _text(obj.mode),
        "payment_intent": obj.payment_intent_id,
        "payment_status": _text(obj.payment_status),
        "status": _text(obj.status),
        "subscription": obj.subscription_id,
        "success_url": obj.success_url or None,
    }


RENDERERS: dict[type, Callable[[Any], dict]] = {
    m.Account: _account,
    m.Customer: _customer,
    m.CustomerBalanceTransaction: _customer_balance_transaction,
    m.Product: _product,
    m.Price: _price,
    m.Subscription: _subscription,
    m.SubscriptionItem: _subscription_item,
    m.Invoice: _invoice,
    m.InvoiceLine: _invoice_line,
    m.PaymentIntent: _payment_intent,
    m.Charge: _charge,
    m.Refund: _refund,
    m.Dispute: _dispute,
    m.CheckoutSession: _checkout_session,
}


def snapshot(obj: m.StripeObject) -> dict:
    """The Stripe JSON of `obj`; an event (`billing.events.event_envelope`) has its own."""
    try:
        render = RENDERERS[type(obj)]
    except KeyError:
        raise TypeError(f"no snapshot for {type(obj).__name__}") from None
    return render(obj)


def changed_attributes(before: dict, after: dict) -> dict:
    """Stripe's `previous_attributes`: the old values of the fields that changed.

    Nested hashes (metadata, address, invoice_settings…) are compared key by key, like
    Stripe does: only the changed keys appear, with their old value, or null for a key
    that did not exist before. Lists are compared whole.
    """
    previous: dict = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list":
            previous[key] = changed_attributes(old, new)
        else:
            previous[key] = old
    return previous
