"""Built-in actions on billing objects: retrieve, update and the verbs, and list sources.

Every action calls `billing.services` / `billing.selectors` (the one writer and the scoped
reads), passes the step's idempotency key to each mutating service, reads the object's latest
state, and returns its snapshot. An id from another environment is "not found"; when the run
belongs to a connected account, only that account's objects are found.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from django.db.models import Q

from billing import models as m
from billing import selectors
from billing.errors import BillingError
from billing.snapshots import changed_attributes, snapshot
from workflows.actions.registry import Action, ActionContext, ActionError, InputField, register
from workflows.definition.event_types import OBJECT_SAMPLES

LIST_LIMIT_MAX = 100


def _services():
    # Imported late: billing.services imports the event machinery, which may import
    # workflow modules through the event subscribers.
    from billing import services

    return services


def _action_error(exc: BillingError) -> ActionError:
    return ActionError(
        exc.message, type=exc.code or exc.type, retryable=bool(exc.retryable), param=exc.param
    )


def _fetch(
    ctx: ActionContext,
    model: type[m.StripeObject],
    object_id: Any,
    param: str,
):
    if not isinstance(object_id, str) or not object_id:
        raise ActionError(
            f"'{param}' must be an id, like {model.ID_PREFIX}_…",
            type="invalid_request_error",
            param=param,
        )
    try:
        obj = selectors.get_object(
            model,
            ctx.environment,
            object_id,
            param=param,
        )
    except BillingError as exc:
        raise _action_error(exc) from None
    if ctx.account is not None and obj.account_id != ctx.account.pk:
        raise ActionError(
            f"No such {model.OBJECT.replace('_', ' ')}: '{object_id}' in account {ctx.account.pk}",
            type="resource_missing",
            param=param,
        )
    return obj


def _record_change(ctx: ActionContext, before: dict, after: dict) -> None:
    old = changed_attributes(before, after)
    if old:
        ctx.changed.append(
            {
                "object": after.get("object"),
                "id": after.get("id"),
                "before": old,
                "after": changed_attributes(after, before),
            }
        )


def _metadata_as_text(params: dict) -> dict:
    """`params` with its metadata values as Stripe stores them: text.

    A dynamic field keeps its value's type (`{{ run.id }}` is a number), and Stripe's
    metadata holds only strings, which its clients send as text: a number becomes its JSON
    text, a boolean "true" or "false", and null removes the key as "" does. An object or a
    list has no text form; the step fails naming the key (saving refuses literal ones).
    """
    metadata = params.get("metadata")
    if not isinstance(metadata, dict):
        return params  # "" clears the map, null leaves it; anything else the service refuses
    text: dict = {}
    for key, value in metadata.items():
        if value is None:
            text[key] = ""
        elif isinstance(value, bool):
            text[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            text[key] = json.dumps(value)
        elif isinstance(value, dict | list):
            kind = "an object" if isinstance(value, dict) else "a list"
            raise ActionError(
                f"Invalid metadata[{key}]: values are text, numbers or booleans, not {kind}; "
                "reference one of its fields instead.",
                type="parameter_invalid",
                param=f"metadata[{key}]",
            )
        else:
            text[key] = value
    return {**params, "metadata": text}


def _changes(params: dict, fields: tuple[str, ...]) -> dict:
    return {name: params[name] for name in fields if params.get(name) is not None}


def _preview(current: dict, changes: dict) -> dict:
    """What a dry run shows: the snapshot with the changes applied (Stripe's metadata rule)."""
    result = copy.deepcopy(current)
    for key, value in changes.items():
        if key == "metadata" and isinstance(value, dict):
            merged = dict(result.get("metadata") or {})
            for meta_key, meta_value in value.items():
                if meta_value in ("", None):
                    merged.pop(meta_key, None)
                else:
                    merged[meta_key] = meta_value
            result["metadata"] = merged
        else:
            result[key] = value
    return result


def _mutate(
    ctx: ActionContext,
    obj: m.StripeObject,
    call: Callable[[], m.StripeObject],
    preview_changes: dict | None = None,
) -> dict:
    before = snapshot(obj)
    if ctx.dry_run:
        return _preview(before, preview_changes or {})
    try:
        # Any error leaves here as an ActionError; in a step it ends the whole transaction.
        updated = call()
    except BillingError as exc:
        raise _action_error(exc) from None
    after = snapshot(updated)
    _record_change(ctx, before, after)
    return after


# --- retrieve / update ------------------------------------------------------------------------


def _retrieve(model: type[m.StripeObject], param: str) -> Callable[[ActionContext, dict], dict]:
    def execute(ctx: ActionContext, params: dict) -> dict:
        return snapshot(_fetch(ctx, model, params.get(param), param))

    return execute


def _update(
    model: type[m.StripeObject], param: str, service: str, fields: tuple[str, ...]
) -> Callable[[ActionContext, dict], dict]:
    def execute(ctx: ActionContext, params: dict) -> dict:
        params = _metadata_as_text(params)
        obj = _fetch(ctx, model, params.get(param), param)
        changes = _changes(params, fields)
        if not changes:
            raise ActionError(
                f"Nothing to update: give at least one of {', '.join(fields)}",
                type="invalid_request_error",
            )
        return _mutate(
            ctx,
            obj,
            lambda: getattr(_services(), service)(
                **{param: obj}, changes=changes, idempotency_key=ctx.idempotency_key
            ),
            changes,
        )

    return execute


def _verb(
    model: type[m.StripeObject],
    param: str,
    service: str,
    extra: tuple[str, ...] = (),
    preview: dict | None = None,
) -> Callable[[ActionContext, dict], dict]:
    def execute(ctx: ActionContext, params: dict) -> dict:
        obj = _fetch(ctx, model, params.get(param), param)
        kwargs = _changes(params, extra)
        return _mutate(
            ctx,
            obj,
            lambda: getattr(_services(), service)(
                **{param: obj}, **kwargs, idempotency_key=ctx.idempotency_key
            ),
            preview,
        )

    return execute


def _refund_create(ctx: ActionContext, params: dict) -> dict:
    params = _metadata_as_text(params)
    charge = payment_intent = None
    if params.get("charge"):
        charge = _fetch(ctx, m.Charge, params["charge"], "charge")
    if params.get("payment_intent"):
        payment_intent = _fetch(ctx, m.PaymentIntent, params["payment_intent"], "payment_intent")
    if charge is None and payment_intent is None:
        raise ActionError(
            "Give the charge or the payment intent to refund",
            type="invalid_request_error",
            param="charge",
        )
    if ctx.dry_run:
        source = snapshot(charge or payment_intent)
        return {
            "id": None,
            "object": "refund",
            "amount": params.get("amount") or source.get("amount"),
            "charge": source["id"] if charge else source.get("latest_charge"),
            "currency": source.get("currency"),
            "metadata": params.get("metadata") or {},
            "payment_intent": payment_intent.pk if payment_intent else source.get("payment_intent"),
            "reason": params.get("reason") or None,
            "status": "succeeded",
            "dry_run": True,
        }
    try:
        refund = _services().refund_create(
            charge=charge,
            payment_intent=payment_intent,
            amount=params.get("amount"),
            reason=params.get("reason") or "",
            metadata=params.get("metadata"),
            idempotency_key=ctx.idempotency_key,
        )
    except BillingError as exc:
        raise _action_error(exc) from None
    after = snapshot(refund)
    ctx.changed.append({"object": "refund", "id": refund.pk, "before": {}, "after": after})
    return after


def _refund_money(ctx: ActionContext, params: dict) -> list[tuple[str, int]]:
    """What a refund would move: the amount asked for, or what is left of the payment."""
    if params.get("charge"):
        charge = _fetch(ctx, m.Charge, params["charge"], "charge")
    else:
        intent = _fetch(ctx, m.PaymentIntent, params.get("payment_intent"), "payment_intent")
        charge = intent.latest_charge
        if charge is None:
            return []
    amount = params.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        amount = charge.amount - charge.amount_refunded
    return [(charge.currency, amount)]


def _invoice_payment_money(ctx: ActionContext, params: dict) -> list[tuple[str, int]]:
    invoice = _fetch(ctx, m.Invoice, params.get("invoice"), "invoice")
    return [(invoice.currency, invoice.amount_remaining)]


def _credit_amount(params: dict) -> Any:
    return params.get("amount")


def _customer_credit(ctx: ActionContext, params: dict) -> dict:
    """A credit to the customer's balance: Stripe's balance transaction with `-amount`."""
    customer = _fetch(ctx, m.Customer, params.get("customer"), "customer")
    amount = _credit_amount(params)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise ActionError(
            f"'amount' must be a positive whole number (the credit, in the minor unit), "
            f"not {amount!r}",
            type="parameter_invalid",
            param="amount",
        )
    if ctx.dry_run:
        return {
            "id": None,
            "object": "customer_balance_transaction",
            "amount": -amount,
            "created": None,
            "currency": (params.get("currency") or "").lower() or None,
            "customer": customer.pk,
            "description": params.get("description") or None,
            "ending_balance": customer.balance - amount,
            "livemode": customer.livemode,
            "metadata": {},
            "type": "adjustment",
            "dry_run": True,
        }
    before = snapshot(customer)
    try:
        entry = _services().customer_balance_transaction_create(
            customer=customer,
            amount=-amount,
            currency=params.get("currency"),
            description=params.get("description") or "",
            idempotency_key=ctx.idempotency_key,
        )
    except BillingError as exc:
        raise _action_error(exc) from None
    after = snapshot(entry)
    ctx.changed.append(
        {"object": "customer_balance_transaction", "id": entry.pk, "before": {}, "after": after}
    )
    _record_change(ctx, before, snapshot(entry.customer))
    return after


def _credit_money(ctx: ActionContext, params: dict) -> list[tuple[str, int]]:
    """A credit moves its amount, in the currency given; nothing else is read."""
    amount = _credit_amount(params)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        return []  # the step itself refuses it, naming amount
    currency = params.get("currency")
    # The service stores currencies in lower case, and the caps are keyed the same way.
    return [(currency.lower() if isinstance(currency, str) else currency, amount)]


def _credit_problems(params: dict) -> list[tuple[str, str]]:
    amount = _credit_amount(params)
    if isinstance(amount, bool) or (isinstance(amount, int | float) and amount < 1):
        return [("amount", "The credit must be a positive amount, in the minor unit")]
    return []


# --- list sources -----------------------------------------------------------------------------


def _list(model: type[m.StripeObject], filters: tuple[str, ...]) -> Callable:
    def execute(ctx: ActionContext, params: dict) -> dict:
        limit = params.get("limit") or 10
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
            raise ActionError(
                f"'limit' must be a whole number from 1 to {LIST_LIMIT_MAX}",
                type="invalid_request_error",
                param="limit",
            )
        qs = selectors.objects_in(model, ctx.environment)
        if ctx.account is not None:
            qs = qs.filter(account=ctx.account)
        if "customer" in filters and params.get("customer"):
            qs = qs.filter(customer_id=params["customer"])
        if "status" in filters and params.get("status"):
            qs = qs.filter(status=params["status"])
        qs = qs.order_by("-created", "-id")
        if params.get("starting_after"):
            cursor = _fetch(ctx, model, params["starting_after"], "starting_after")
            qs = qs.filter(
                Q(created__lt=cursor.created) | Q(created=cursor.created, id__lt=cursor.pk)
            )
        rows = list(qs[: limit + 1])
        return {
            "object": "list",
            "data": [snapshot(row) for row in rows[:limit]],
            "has_more": len(rows) > limit,
        }

    return execute


def _list_inputs(statuses: tuple[str, ...]) -> tuple[InputField, ...]:
    return (
        InputField(
            "customer",
            "string",
            help="Only this customer's objects (cus_…).",
            object_type="customer",
        ),
        InputField("status", "string", choices=statuses, help="Only objects in this status."),
        InputField("limit", "integer", help=f"Page size, 1 to {LIST_LIMIT_MAX} (default 10)."),
        InputField("starting_after", "string", help="The last id of the previous page."),
    )


def _list_output(object_type: str) -> dict:
    return {"object": "list", "data": [OBJECT_SAMPLES[object_type]], "has_more": False}


# --- registration -----------------------------------------------------------------------------

_METADATA = InputField(
    "metadata",
    "metadata",
    help=(
        "Keys given are merged in; a key set to an empty string or null is removed. Values "
        "are text: a number or boolean is stored as its text."
    ),
)


def _id_field(name: str, prefix: str, label: str) -> InputField:
    return InputField(
        name, "string", required=True, help=f"The {label} id ({prefix}_…).", object_type=name
    )


CUSTOMER_FIELDS = ("email", "name", "phone", "description", "address", "metadata")
SUBSCRIPTION_FIELDS = ("metadata", "default_payment_method", "cancel_at_period_end")
INVOICE_FIELDS = ("description", "metadata")
PAYMENT_INTENT_FIELDS = ("description", "metadata")

ACTIONS = (
    Action(
        key="customers.retrieve",
        label="Retrieve a customer",
        description="Read the customer's latest state.",
        group="Customers",
        inputs=(_id_field("customer", "cus", "customer"),),
        output=OBJECT_SAMPLES["customer"],
        side_effects=False,
        execute=_retrieve(m.Customer, "customer"),
    ),
    Action(
        key="customers.update",
        label="Update a customer",
        description="Change the customer's fields; metadata keys are merged in.",
        group="Customers",
        inputs=(
            _id_field("customer", "cus", "customer"),
            InputField("email", "string"),
            InputField("name", "string"),
            InputField("phone", "string"),
            InputField("description", "text"),
            InputField("address", "object", help="line1, line2, city, state, postal_code, country"),
            _METADATA,
        ),
        output=OBJECT_SAMPLES["customer"],
        execute=_update(m.Customer, "customer", "customer_update", CUSTOMER_FIELDS),
    ),
    Action(
        key="customers.credit",
        label="Credit a customer's balance",
        description=(
            "Add a credit to the customer's balance (a balance transaction of -amount); "
            "their next invoices use it up."
        ),
        group="Customers",
        inputs=(
            _id_field("customer", "cus", "customer"),
            InputField(
                "amount",
                "integer",
                required=True,
                help="The credit, a positive amount in the minor unit (500 is 5.00 USD).",
            ),
            InputField(
                "currency",
                "string",
                required=True,
                help="The balance's currency, e.g. usd; must match the customer's.",
            ),
            InputField("description", "text"),
        ),
        output=OBJECT_SAMPLES["customer_balance_transaction"],
        execute=_customer_credit,
        moves_money=_credit_money,
        validate_params=_credit_problems,
    ),
    Action(
        key="subscriptions.retrieve",
        label="Retrieve a subscription",
        description="Read the subscription's latest state.",
        group="Subscriptions",
        inputs=(_id_field("subscription", "sub", "subscription"),),
        output=OBJECT_SAMPLES["subscription"],
        side_effects=False,
        execute=_retrieve(m.Subscription, "subscription"),
    ),
    Action(
        key="subscriptions.update",
        label="Update a subscription",
        description="Change the subscription's metadata, payment method or period-end cancel.",
        group="Subscriptions",
        inputs=(
            _id_field("subscription", "sub", "subscription"),
            _METADATA,
            InputField("default_payment_method", "string"),
            InputField("cancel_at_period_end", "boolean"),
        ),
        output=OBJECT_SAMPLES["subscription"],
        execute=_update(m.Subscription, "subscription", "subscription_update", SUBSCRIPTION_FIELDS),
    ),
    Action(
        key="subscriptions.cancel",
        label="Cancel a subscription",
        description="Cancel now, or at the end of the current period.",
        group="Subscriptions",
        inputs=(
            _id_field("subscription", "sub", "subscription"),
            InputField("at_period_end", "boolean", help="Cancel when the current period ends."),
        ),
        output=OBJECT_SAMPLES["subscription"],
        execute=_verb(
            m.Subscription,
            "subscription",
            "subscription_cancel",
            ("at_period_end",),
            {"status": "canceled"},
        ),
    ),
    Action(
        key="invoices.retrieve",
        label="Retrieve an invoice",
        description="Read the invoice's latest state.",
        group="Invoices",
        inputs=(_id_field("invoice", "in", "invoice"),),
        output=OBJECT_SAMPLES["invoice"],
        side_effects=False,
        execute=_retrieve(m.Invoice, "invoice"),
    ),
    Action(
        key="invoices.update",
        label="Update an invoice",
        description="Change the invoice's description or metadata.",
        group="Invoices",
        inputs=(
            _id_field("invoice", "in", "invoice"),
            InputField("description", "text"),
            _METADATA,
        ),
        output=OBJECT_SAMPLES["invoice"],
        execute=_update(m.Invoice, "invoice", "invoice_update", INVOICE_FIELDS),
    ),
    Action(
        key="invoices.finalize",
        label="Finalize an invoice",
        description="Turn a draft invoice into an open one that can be paid.",
        group="Invoices",
        inputs=(_id_field("invoice", "in", "invoice"),),
        output=OBJECT_SAMPLES["invoice"],
        execute=_verb(m.Invoice, "invoice", "invoice_finalize", preview={"status": "open"}),
    ),
    Action(
        key="invoices.void",
        label="Void an invoice",
        description="Void an open invoice: it will not be paid.",
        group="Invoices",
        inputs=(_id_field("invoice", "in", "invoice"),),
        output=OBJECT_SAMPLES["invoice"],
        execute=_verb(m.Invoice, "invoice", "invoice_void", preview={"status": "void"}),
    ),
    Action(
        key="invoices.pay",
        label="Pay an invoice",
        description="Charge an open invoice now; a decline leaves it open (check its status).",
        group="Invoices",
        inputs=(
            _id_field("invoice", "in", "invoice"),
            InputField("payment_method", "string", help="Defaults to the customer's."),
        ),
        output=OBJECT_SAMPLES["invoice"],
        execute=_verb(m.Invoice, "invoice", "invoice_pay", ("payment_method",)),
        moves_money=_invoice_payment_money,
    ),
    Action(
        key="payment_intents.retrieve",
        label="Retrieve a payment intent",
        description="Read the payment intent's latest state.",
        group="Payments",
        inputs=(_id_field("payment_intent", "pi", "payment intent"),),
        output=OBJECT_SAMPLES["payment_intent"],
        side_effects=False,
        execute=_retrieve(m.PaymentIntent, "payment_intent"),
    ),
    Action(
        key="payment_intents.update",
        label="Update a payment intent",
        description="Change the payment intent's description or metadata.",
        group="Payments",
        inputs=(
            _id_field("payment_intent", "pi", "payment intent"),
            InputField("description", "text"),
            _METADATA,
        ),
        output=OBJECT_SAMPLES["payment_intent"],
        execute=_update(
            m.PaymentIntent, "payment_intent", "payment_intent_update", PAYMENT_INTENT_FIELDS
        ),
    ),
    Action(
        key="refunds.create",
        label="Refund a payment",
        description="Refund a charge or a payment intent, in full or a part of it.",
        group="Payments",
        inputs=(
            InputField(
                "charge", "string", help="The charge to refund (ch_…).", object_type="charge"
            ),
            InputField(
                "payment_intent",
                "string",
                help="Or the payment intent (pi_…).",
                object_type="payment_intent",
            ),
            InputField("amount", "integer", help="In the minor unit; default: all of it."),
            InputField(
                "reason",
                "string",
                choices=("duplicate", "fraudulent", "requested_by_customer"),
            ),
            _METADATA,
        ),
        output=OBJECT_SAMPLES["refund"],
        execute=_refund_create,
        moves_money=_refund_money,
        validate_params=lambda params: (
            []
            if params.get("charge") or params.get("payment_intent")
            else [("charge", "Give the charge or the payment intent to refund")]
        ),
    ),
    Action(
        key="subscriptions.list",
        label="List subscriptions",
        description="Subscriptions, newest first; a loop pages through all of them.",
        group="Subscriptions",
        inputs=_list_inputs(tuple(m.Subscription.Status.values)),
        output=_list_output("subscription"),
        side_effects=False,
        is_list_source=True,
        execute=_list(m.Subscription, ("customer", "status")),
    ),
    Action(
        key="invoices.list",
        label="List invoices",
        description="Invoices, newest first; a loop pages through all of them.",
        group="Invoices",
        inputs=_list_inputs(tuple(m.Invoice.Status.values)),
        output=_list_output("invoice"),
        side_effects=False,
        is_list_source=True,
        execute=_list(m.Invoice, ("customer", "status")),
    ),
    Action(
        key="charges.list",
        label="List charges",
        description="Charges, newest first; a loop pages through all of them.",
        group="Payments",
        inputs=_list_inputs(tuple(m.Charge.Status.values)),
        output=_list_output("charge"),
        side_effects=False,
        is_list_source=True,
        execute=_list(m.Charge, ("customer", "status")),
    ),
)

for _action in ACTIONS:
    register(_action)
