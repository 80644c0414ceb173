"""The one writer of billing objects.

Each public service is keyword-only, runs in one transaction (`billing_service`), appends its
events in that transaction, and accepts `idempotency_key`, `request_id` and `cause` (the
workflow run making the change, stamped on its events). A card decline is not an exception:
the objects end in their failed states and the failure events are recorded.

Plain Django throughout: an object is changed after reading it again under its row lock
(`select_for_update()`), saved with `save(update_fields=...)` where the changed fields are
known, and each event is an `Event.objects.create` (`billing.events.record_event`), so
`save()` overrides and model signals see every billing write. docs/billing.md records the
choices Stripe leaves open.
"""

from __future__ import annotations

import calendar
import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Model
from django.utils import timezone

from billing import provider
from billing.errors import NotFoundError
from billing.events import Cause, record_event
from billing.idempotency import billing_service
from billing.models import (
    Account,
    Charge,
    CheckoutSession,
    Customer,
    CustomerBalanceTransaction,
    Dispute,
    Environment,
    Invoice,
    InvoiceLine,
    PaymentIntent,
    Price,
    Product,
    Refund,
    StripeObject,
    Subscription,
    SubscriptionItem,
)
from billing.snapshots import changed_attributes, snapshot
from billing.validation import (
    DISPUTE_REASONS,
    check_address,
    check_amount,
    check_currency,
    check_email,
    check_same_environment,
    check_text,
    invalid,
    invoice_line_rows,
    merge_metadata,
    optional_payment_method,
    price_items,
    reject_unknown,
)

CHECKOUT_SESSION_LIFETIME = timedelta(hours=24)

M = TypeVar("M", bound=Model)


# --- shared steps -------------------------------------------------------------------------------


def _event(type: str, obj: StripeObject, previous_attributes: dict | None = None) -> None:
    record_event(
        environment=obj.environment,
        account=obj.account,
        type=type,
        obj=obj,
        previous_attributes=previous_attributes,
    )


@contextlib.contextmanager
def _recording_changes(
    obj: StripeObject, event_type: str | None, fields: list[str] | None = None
) -> Iterator[None]:
    """Whatever the block changes is saved (only `fields`, when the caller knows them), then
    `event_type` is recorded with Stripe's `previous_attributes`: the old values of exactly
    what changed in the object's JSON. No change, no event."""
    before = snapshot(obj)
    yield
    if fields:
        obj.save(update_fields=fields)
    else:
        obj.save()
    previous = changed_attributes(before, snapshot(obj))
    if previous and event_type:
        _event(event_type, obj, previous)


def _change(obj: StripeObject, fields: dict[str, Any], event_type: str | None) -> None:
    with _recording_changes(obj, event_type, list(fields)):
        for name, value in fields.items():
            setattr(obj, name, value)


def _locked(obj: M) -> M:
    """Re-read a row under a lock, so concurrent payments or refunds queue behind each other."""
    locked = type(obj).objects.select_for_update().get(pk=obj.pk)
    # An object never moves to another environment: reuse the one already loaded, if any.
    environment = type(obj)._meta.get_field("environment")
    if environment.is_cached(obj) and locked.environment_id == obj.environment_id:
        environment.set_cached_value(locked, environment.get_cached_value(obj))
    return locked


def _add_interval(start: datetime, interval: str, count: int) -> datetime:
    if interval == Price.Interval.DAY:
        return start + timedelta(days=count)
    if interval == Price.Interval.WEEK:
        return start + timedelta(weeks=count)
    months = count * (12 if interval == Price.Interval.YEAR else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    # Jan 31 + 1 month is the last day of February, as Stripe bills it.
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def _account_for(
    environment: Environment, account: Account | None, customer: Customer | None
) -> Account | None:
    check_same_environment(account, environment, "account")
    check_same_environment(customer, environment, "customer")
    if customer is not None and account is not None and customer.account_id != account.pk:
        raise invalid("The customer belongs to another account.", "customer")
    return account if account is not None else (customer.account if customer else None)


# --- accounts, customers, products, prices ------------------------------------------------------


@billing_service("account_create")
def account_create(
    *,
    environment: Environment,
    name: str,
    email: str = "",
    country: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Account:
    """A connected account. Stripe sends no event for this to the platform, nor do we."""
    name = check_text(name, param="name", max_length=200)
    if not name:
        raise invalid("Missing required param: name.", "name", "parameter_missing")
    country = check_text(country, param="country", max_length=2).upper()
    if country and len(country) != 2:
        raise invalid("Invalid country: use a two-letter ISO code.", "country")
    return Account.objects.create(
        environment=environment,
        name=name,
        email=check_email(email),
        country=country,
        metadata=merge_metadata({}, metadata or {}),
    )


CUSTOMER_FIELDS = {"email", "name", "phone", "description", "address", "metadata"}


def _customer_fields(changes: dict, current: Customer | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "email" in changes:
        fields["email"] = check_email(changes["email"])
    for name, limit in (("name", 256), ("phone", 40), ("description", 5000)):
        if name in changes:
            fields[name] = check_text(changes[name], param=name, max_length=limit)
    if "address" in changes:
        fields["address"] = check_address(changes["address"])
    if "metadata" in changes:
        fields["metadata"] = merge_metadata(
            current.metadata if current else {}, changes["metadata"]
        )
    if "default_payment_method" in changes:
        fields["default_payment_method"] = optional_payment_method(
            changes["default_payment_method"], param="invoice_settings[default_payment_method]"
        )
    return fields


@billing_service("customer_create")
def customer_create(
    *,
    environment: Environment,
    account: Account | None = None,
    email: str = "",
    name: str = "",
    phone: str = "",
    description: str = "",
    address: dict | None = None,
    metadata: dict | None = None,
    default_payment_method: str = "",
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Customer:
    check_same_environment(account, environment, "account")
    fields = _customer_fields(
        {
            "email": email,
            "name": name,
            "phone": phone,
            "description": description,
            "address": address,
            "metadata": metadata or {},
            "default_payment_method": default_payment_method,
        }
    )
    customer = Customer.objects.create(environment=environment, account=account, **fields)
    _event("customer.created", customer)
    return customer


@billing_service("customer_update")
def customer_update(
    *,
    customer: Customer,
    changes: dict,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Customer:
    """`changes` uses the API's names; `invoice_settings.default_payment_method` or plain
    `default_payment_method` set the default payment method."""
    changes = dict(changes)
    settings = changes.pop("invoice_settings", None)
    if isinstance(settings, dict) and "default_payment_method" in settings:
        changes["default_payment_method"] = settings["default_payment_method"] or ""
    reject_unknown(changes, CUSTOMER_FIELDS | {"default_payment_method"})
    customer = _locked(customer)
    if customer.deleted:
        raise invalid(
            f"No such customer: '{customer.pk}' (deleted).", "customer", "resource_missing"
        )
    _change(customer, _customer_fields(changes, customer), "customer.updated")
    return customer


@billing_service("customer_delete")
def customer_delete(
    *,
    customer: Customer,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Customer:
    """Stripe's customer delete: the customer is gone for the API (a 404 from then on for
    writes, left out of lists), its subscriptions still running are canceled now, and
    `customer.deleted` carries its last state. The row stays, marked `deleted`, because its
    charges and invoices still point at it."""
    customer = _locked(customer)
    if customer.deleted:
        raise NotFoundError(f"No such customer: '{customer.pk}'", param="id")
    running = Subscription.objects.filter(customer=customer).exclude(
        status__in=[Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED]
    )
    for subscription in running.order_by("created", "pk"):
        subscription_cancel(subscription=subscription, request_id=request_id, cause=cause)
    customer.deleted = True
    customer.save(update_fields=["deleted"])
    _event("customer.deleted", customer)
    return customer


@billing_service("customer_balance_transaction_create")
def customer_balance_transaction_create(
    *,
    customer: Customer,
    amount: int,
    currency: str,
    description: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> CustomerBalanceTransaction:
    """Stripe's balance adjustment: a negative `amount` credits the customer (lowers what they
    owe), a positive one debits. The customer's balance has one currency: the first
    transaction sets it, another currency is refused."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise invalid(f"Invalid integer: {amount!r}; amount must be a whole number.", "amount")
    if amount == 0:
        raise invalid("Invalid amount: a balance transaction cannot be 0.", "amount")
    currency = check_currency(currency)
    description = check_text(description, param="description", max_length=350)
    # Locked so that concurrent transactions add up: each one's ending balance is exact.
    customer = _locked(customer)
    if customer.deleted:
        raise invalid(
            f"No such customer: '{customer.pk}' (deleted).", "customer", "resource_missing"
        )
    if customer.currency and customer.currency != currency:
        raise invalid(
            f"Invalid currency: the customer's balance is in {customer.currency}; a balance "
            f"transaction in {currency} cannot be added to it.",
            "currency",
        )
    balance = customer.balance + amount
    entry = CustomerBalanceTransaction.objects.create(
        environment=customer.environment,
        account=customer.account,
        customer=customer,
        amount=amount,
        currency=currency,
        description=description,
        ending_balance=balance,
        metadata=merge_metadata({}, metadata or {}),
    )
    _change(customer, {"balance": balance, "currency": currency}, "customer.updated")
    return entry


@billing_service("product_create")
def product_create(
    *,
    environment: Environment,
    account: Account | None = None,
    name: str,
    description: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Product:
    check_same_environment(account, environment, "account")
    name = check_text(name, param="name", max_length=250)
    if not name:
        raise invalid("Missing required param: name.", "name", "parameter_missing")
    product = Product.objects.create(
        environment=environment,
        account=account,
        name=name,
        description=check_text(description, param="description"),
        metadata=merge_metadata({}, metadata or {}),
    )
    _event("product.created", product)
    return product


@billing_service("price_create")
def price_create(
    *,
    product: Product,
    currency: str,
    unit_amount: int,
    recurring_interval: str = "",
    recurring_interval_count: int = 1,
    nickname: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Price:
    if recurring_interval and recurring_interval not in Price.Interval.values:
        raise invalid(
            f"Invalid recurring[interval]: must be one of {', '.join(Price.Interval.values)}.",
            "recurring[interval]",
        )
    price = Price.objects.create(
        environment=product.environment,
        account=product.account,
        product=product,
        currency=check_currency(currency),
        unit_amount=check_amount(unit_amount, param="unit_amount", minimum=0),
        recurring_interval=recurring_interval,
        recurring_interval_count=check_amount(
            recurring_interval_count, param="recurring[interval_count]"
        ),
        nickname=check_text(nickname, param="nickname", max_length=250),
        metadata=merge_metadata({}, metadata or {}),
    )
    _event("price.created", price)
    return price


# --- payments -----------------------------------------------------------------------------------


def _attempt_payment(intent: PaymentIntent, payment_method: str) -> PaymentIntent:
    """Charge through the provider and record the outcome on the intent and a new charge.

    A transient provider failure raises `ProviderError` before anything is written here, and
    the caller's transaction rolls back whatever it wrote before.
    """
    result = provider.get_provider().charge(
        environment=intent.environment,
        amount=intent.amount,
        currency=intent.currency,
        payment_method=payment_method,
        # One key per attempt on this intent: a retry of the same attempt re-uses it.
        idempotency_key=f"{intent.pk}/attempt/{intent.charges.count()}",
    )
    charge = Charge.objects.create(
        environment=intent.environment,
        account=intent.account,
        payment_intent=intent,
        customer=intent.customer,
        invoice=intent.invoice,
        amount=intent.amount,
        amount_captured=intent.amount if result.status == "succeeded" else 0,
        currency=intent.currency,
        status={"succeeded": Charge.Status.SUCCEEDED, "failed": Charge.Status.FAILED}.get(
            result.status, Charge.Status.PENDING
        ),
        paid=result.status == "succeeded",
        payment_method=payment_method,
        failure_code=result.failure_code,
        failure_message=result.message,
        outcome=result.outcome if result.status != "processing" else None,
    )
    intent.payment_method = payment_method
    intent.latest_charge = charge
    intent.last_payment_error = result.last_payment_error
    if result.status == "succeeded":
        intent.status = PaymentIntent.Status.SUCCEEDED
        intent.amount_received = intent.amount
    elif result.status == "failed":
        intent.status = PaymentIntent.Status.REQUIRES_PAYMENT_METHOD
    else:
        intent.status = PaymentIntent.Status.PROCESSING
    intent.save()
    _event(
        {"succeeded": "charge.succeeded", "failed": "charge.failed"}.get(
            result.status, "charge.pending"
        ),
        charge,
    )
    _event(
        {"succeeded": "payment_intent.succeeded", "failed": "payment_intent.payment_failed"}.get(
            result.status, "payment_intent.processing"
        ),
        intent,
    )
    return intent


def _settle_payment(intent: PaymentIntent, *, succeeded: bool) -> PaymentIntent:
    """The end of a delayed payment: the pending charge succeeds or fails."""
    intent = _locked(intent)
    if intent.status != PaymentIntent.Status.PROCESSING:
        raise invalid(
            f"This PaymentIntent is {intent.status}; only a processing payment can settle.",
            "payment_intent",
            "payment_intent_unexpected_state",
        )
    charge = _locked(intent.latest_charge)
    if succeeded:
        charge.status, charge.paid, charge.amount_captured = (
            Charge.Status.SUCCEEDED,
            True,
            charge.amount,
        )
        charge.outcome = provider.ChargeResult("succeeded").outcome
        intent.status, intent.amount_received = PaymentIntent.Status.SUCCEEDED, intent.amount
    else:
        failed = provider.ChargeResult(
            "failed", "payment_failed", "generic_decline", "The payment failed."
        )
        charge.status, charge.failure_code, charge.failure_message = (
            Charge.Status.FAILED,
            failed.failure_code,
            failed.message,
        )
        charge.outcome = failed.outcome
        intent.status = PaymentIntent.Status.REQUIRES_PAYMENT_METHOD
        intent.last_payment_error = failed.last_payment_error
    charge.save()
    intent.save()
    _event("charge.succeeded" if succeeded else "charge.failed", charge)
    _event("payment_intent.succeeded" if succeeded else "payment_intent.payment_failed", intent)
    return intent


@billing_service("payment_intent_create")
def payment_intent_create(
    *,
    environment: Environment,
    amount: int,
    currency: str,
    account: Account | None = None,
    customer: Customer | None = None,
    payment_method: str = "",
    description: str = "",
    metadata: dict | None = None,
    confirm: bool = False,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> PaymentIntent:
    payment_method = optional_payment_method(payment_method, param="payment_method")
    if confirm and not payment_method:
        raise invalid(
            "A payment method is required to confirm.", "payment_method", "parameter_missing"
        )
    intent = PaymentIntent.objects.create(
        environment=environment,
        account=_account_for(environment, account, customer),
        customer=customer,
        amount=check_amount(amount, param="amount"),
        currency=check_currency(currency),
        payment_method=payment_method,
        status=(
            PaymentIntent.Status.REQUIRES_CONFIRMATION
            if payment_method
            else PaymentIntent.Status.REQUIRES_PAYMENT_METHOD
        ),
        description=check_text(description, param="description"),
        metadata=merge_metadata({}, metadata or {}),
    )
    _event("payment_intent.created", intent)
    if confirm:
        intent = _attempt_payment(intent, payment_method)
    return intent


CONFIRMABLE = {
    PaymentIntent.Status.REQUIRES_PAYMENT_METHOD,
    PaymentIntent.Status.REQUIRES_CONFIRMATION,
}


@billing_service("payment_intent_update")
def payment_intent_update(
    *,
    payment_intent: PaymentIntent,
    changes: dict,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> PaymentIntent:
    """Stripe sends no event for a PaymentIntent update, and neither do we."""
    reject_unknown(changes, {"amount", "currency", "description", "metadata", "payment_method"})
    intent = _locked(payment_intent)
    if intent.status not in CONFIRMABLE and set(changes) - {"metadata", "description"}:
        raise invalid(
            f"This PaymentIntent's status is {intent.status}; only its metadata and description "
            "can change.",
            next(iter(set(changes) - {"metadata", "description"})),
            "payment_intent_unexpected_state",
        )
    fields: dict[str, Any] = {}
    if "amount" in changes:
        fields["amount"] = check_amount(changes["amount"], param="amount")
    if "currency" in changes:
        fields["currency"] = check_currency(changes["currency"])
    if "description" in changes:
        fields["description"] = check_text(changes["description"], param="description")
    if "metadata" in changes:
        fields["metadata"] = merge_metadata(intent.metadata, changes["metadata"])
    if "payment_method" in changes:
        fields["payment_method"] = optional_payment_method(
            changes["payment_method"], param="payment_method"
        )
        fields["status"] = (
            PaymentIntent.Status.REQUIRES_CONFIRMATION
            if fields["payment_method"]
            else PaymentIntent.Status.REQUIRES_PAYMENT_METHOD
        )
    _change(intent, fields, None)
    return intent


@billing_service("payment_intent_confirm")
def payment_intent_confirm(
    *,
    payment_intent: PaymentIntent,
    payment_method: str = "",
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> PaymentIntent:
    intent = _locked(payment_intent)
    if intent.status not in CONFIRMABLE:
        raise invalid(
            f"This PaymentIntent's status is {intent.status}; it cannot be confirmed.",
            "payment_intent",
            "payment_intent_unexpected_state",
        )
    method = (
        optional_payment_method(payment_method, param="payment_method") or intent.payment_method
    )
    if not method:
        raise invalid(
            "A payment method is required to confirm.", "payment_method", "parameter_missing"
        )
    return _attempt_payment(intent, method)


@billing_service("payment_intent_cancel")
def payment_intent_cancel(
    *,
    payment_intent: PaymentIntent,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> PaymentIntent:
    intent = _locked(payment_intent)
    if intent.status not in CONFIRMABLE | {PaymentIntent.Status.REQUIRES_ACTION}:
        raise invalid(
            f"This PaymentIntent's status is {intent.status}; it cannot be canceled.",
            "payment_intent",
            "payment_intent_unexpected_state",
        )
    intent.status = PaymentIntent.Status.CANCELED
    intent.canceled_at = timezone.now()
    intent.save()
    _event("payment_intent.canceled", intent)
    return intent


@billing_service("payment_intent_settle")
def payment_intent_settle(
    *,
    payment_intent: PaymentIntent,
    succeeded: bool,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> PaymentIntent:
    """Ends a delayed payment (`pm_delayed_*`) made outside checkout. If the intent pays an
    invoice, the invoice and its subscription follow."""
    intent = _settle_payment(payment_intent, succeeded=succeeded)
    if intent.invoice_id:
        _after_invoice_payment(_locked(intent.invoice), intent)
    return intent


# --- invoices -----------------------------------------------------------------------------------


def _invoice_create(
    *,
    customer: Customer,
    rows: list[dict],
    subscription: Subscription | None,
    description: str,
    metadata: dict,
) -> Invoice:
    total = sum(row["amount"] for row in rows)
    invoice = Invoice.objects.create(
        environment=customer.environment,
        account=customer.account,
        customer=customer,
        subscription=subscription,
        currency=rows[0]["currency"],
        subtotal=total,
        total=total,
        amount_due=total,
        amount_remaining=total,
        description=description,
        metadata=metadata,
    )
    for row in rows:
        InvoiceLine.objects.create(
            environment=invoice.environment, account=invoice.account, invoice=invoice, **row
        )
    _event("invoice.created", invoice)
    return invoice


@billing_service("invoice_create")
def invoice_create(
    *,
    customer: Customer,
    lines: list[dict],
    subscription: Subscription | None = None,
    description: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Invoice:
    if subscription is not None and subscription.customer_id != customer.pk:
        raise invalid("The subscription belongs to another customer.", "subscription")
    return _invoice_create(
        customer=customer,
        rows=invoice_line_rows(lines, environment=customer.environment),
        subscription=subscription,
        description=check_text(description, param="description"),
        metadata=merge_metadata({}, metadata or {}),
    )


@billing_service("invoice_update")
def invoice_update(
    *,
    invoice: Invoice,
    changes: dict,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Invoice:
    """A draft's description and metadata can change; a finalized invoice's metadata only."""
    reject_unknown(changes, {"description", "metadata"})
    invoice = _locked(invoice)
    if "description" in changes and invoice.status != Invoice.Status.DRAFT:
        raise invalid(
            f"This invoice is {invoice.status}; only a draft's description can change.",
            "description",
            "invoice_not_editable",
        )
    fields: dict[str, Any] = {}
    if "description" in changes:
        fields["description"] = check_text(changes["description"], param="description")
    if "metadata" in changes:
        fields["metadata"] = merge_metadata(invoice.metadata, changes["metadata"])
    _change(invoice, fields, "invoice.updated")
    return invoice


def _finalize(invoice: Invoice) -> Invoice:
    if invoice.status != Invoice.Status.DRAFT:
        raise invalid(
            f"This invoice is already {invoice.status}; only a draft can be finalized.",
            "invoice",
            "invoice_unexpected_state",
        )
    # Stripe numbers invoices per customer: a customer prefix and a sequence.
    sequence = (
        Invoice.objects.filter(customer_id=invoice.customer_id).exclude(number="").count() + 1
    )
    invoice.number = f"{invoice.customer_id[-8:].upper()}-{sequence:04d}"
    invoice.status = Invoice.Status.OPEN
    invoice.finalized_at = timezone.now()
    invoice.save()
    _event("invoice.finalized", invoice)
    if invoice.amount_due == 0:
        # Nothing to collect: Stripe marks a zero invoice paid when it is finalized.
        invoice.status, invoice.paid_at = Invoice.Status.PAID, timezone.now()
        invoice.save()
        _event("invoice.paid", invoice)
    return invoice


@billing_service("invoice_finalize")
def invoice_finalize(
    *,
    invoice: Invoice,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Invoice:
    return _finalize(_locked(invoice))


def _after_invoice_payment(invoice: Invoice, intent: PaymentIntent) -> None:
    """The invoice (already locked) and its subscription follow the payment's outcome."""
    if intent.status == PaymentIntent.Status.PROCESSING:
        return
    succeeded = intent.status == PaymentIntent.Status.SUCCEEDED
    invoice.attempt_count += 1
    if succeeded:
        invoice.status = Invoice.Status.PAID
        invoice.amount_paid += intent.amount
        invoice.amount_remaining = 0
        invoice.paid_at = timezone.now()
    invoice.save()
    if succeeded:
        _event("invoice.paid", invoice)
        _event("invoice.payment_succeeded", invoice)
    else:
        _event("invoice.payment_failed", invoice)
    if invoice.subscription_id is None:
        return
    subscription = _locked(invoice.subscription)
    Status = Subscription.Status
    if succeeded and subscription.status in {Status.INCOMPLETE, Status.PAST_DUE, Status.UNPAID}:
        _change(subscription, {"status": Status.ACTIVE}, "customer.subscription.updated")
    elif not succeeded and subscription.status == Status.ACTIVE:
        _change(subscription, {"status": Status.PAST_DUE}, "customer.subscription.updated")


def _pay(invoice: Invoice, payment_method: str) -> Invoice:
    """Pay an invoice (locked by the caller): finalize a draft first, as Stripe does."""
    if invoice.status == Invoice.Status.DRAFT:
        invoice = _finalize(invoice)
    if invoice.status != Invoice.Status.OPEN:
        raise invalid(
            f"This invoice is {invoice.status}; only an open invoice can be paid.",
            "invoice",
            "invoice_unexpected_state",
        )
    method = (
        optional_payment_method(payment_method, param="payment_method")
        or (invoice.subscription.default_payment_method if invoice.subscription else "")
        or invoice.customer.default_payment_method
    )
    if not method:
        raise invalid(
            "The customer has no default payment method; pass payment_method.",
            "payment_method",
            "parameter_missing",
        )
    intent = invoice.payment_intent
    if intent is not None and intent.status == PaymentIntent.Status.PROCESSING:
        raise invalid(
            "This invoice's payment is still processing.", "invoice", "invoice_payment_processing"
        )
    if intent is None or intent.status not in CONFIRMABLE:
        intent = PaymentIntent.objects.create(
            environment=invoice.environment,
            account=invoice.account,
            customer=invoice.customer,
            invoice=invoice,
            amount=invoice.amount_remaining,
            currency=invoice.currency,
            description=f"Invoice {invoice.number}",
        )
        _event("payment_intent.created", intent)
        invoice.payment_intent = intent
        invoice.save(update_fields=["payment_intent"])
    invoice.payment_intent = _attempt_payment(_locked(intent), method)
    _after_invoice_payment(invoice, invoice.payment_intent)
    return invoice


@billing_service("invoice_pay")
def invoice_pay(
    *,
    invoice: Invoice,
    payment_method: str = "",
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Invoice:
    return _pay(_locked(invoice), payment_method)


@billing_service("invoice_void")
def invoice_void(
    *,
    invoice: Invoice,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Invoice:
    invoice = _locked(invoice)
    if invoice.status not in {Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE}:
        raise invalid(
            f"This invoice is {invoice.status}; only an open invoice can be voided.",
            "invoice",
            "invoice_unexpected_state",
        )
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = timezone.now()
    invoice.save()
    _event("invoice.voided", invoice)
    return invoice


# --- subscriptions ------------------------------------------------------------------------------


def _add_items(subscription: Subscription, items: list[tuple[Price, int]]) -> None:
    for price, quantity in items:
        SubscriptionItem.objects.create(
            environment=subscription.environment,
            account=subscription.account,
            subscription=subscription,
            price=price,
            quantity=quantity,
        )


def _subscription_create(
    *,
    customer: Customer,
    items: list[tuple[Price, int]],
    default_payment_method: str,
    metadata: dict,
) -> Subscription:
    """Stripe's `default_incomplete` flow: the subscription is created incomplete, its first
    invoice is created, finalized and paid, and a successful payment makes it active."""
    method = default_payment_method or customer.default_payment_method
    if not method:
        raise invalid(
            "This customer has no default payment method; pass default_payment_method.",
            "default_payment_method",
            "parameter_missing",
        )
    first_price = items[0][0]
    now = timezone.now()
    subscription = Subscription.objects.create(
        environment=customer.environment,
        account=customer.account,
        customer=customer,
        currency=first_price.currency,
        current_period_start=now,
        current_period_end=_add_interval(
            now, first_price.recurring_interval, first_price.recurring_interval_count
        ),
        default_payment_method=default_payment_method,
        metadata=metadata,
    )
    _add_items(subscription, items)
    _event("customer.subscription.created", subscription)
    invoice = _invoice_create(
        customer=customer,
        rows=[
            {
                "price": price,
                "quantity": quantity,
                "amount": price.unit_amount * quantity,
                "currency": price.currency,
                "description": f"{quantity} × {price.product.name}",
            }
            for price, quantity in items
        ],
        subscription=subscription,
        description="",
        metadata={},
    )
    # Stripe does not announce `latest_invoice` being set on creation with an updated event.
    subscription.latest_invoice = invoice
    subscription.save(update_fields=["latest_invoice"])
    invoice = _finalize(invoice)
    if invoice.status == Invoice.Status.OPEN:
        _pay(_locked(invoice), method)
    else:  # a zero first invoice is paid on finalizing: nothing to charge
        subscription = _locked(subscription)
        _change(
            subscription, {"status": Subscription.Status.ACTIVE}, "customer.subscription.updated"
        )
    return Subscription.objects.get(pk=subscription.pk)


@billing_service("subscription_create")
def subscription_create(
    *,
    customer: Customer,
    items: list[dict],
    default_payment_method: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Subscription:
    return _subscription_create(
        customer=customer,
        items=price_items(items, environment=customer.environment, param="items", recurring=True),
        default_payment_method=optional_payment_method(
            default_payment_method, param="default_payment_method"
        ),
        metadata=merge_metadata({}, metadata or {}),
    )


@billing_service("subscription_update")
def subscription_update(
    *,
    subscription: Subscription,
    changes: dict,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Subscription:
    """Metadata, default payment method, `cancel_at_period_end`, and `items` (which replace
    the current items; the new prices apply from the next period, without proration)."""
    reject_unknown(changes, {"metadata", "default_payment_method", "cancel_at_period_end", "items"})
    subscription = _locked(subscription)
    if subscription.status == Subscription.Status.CANCELED and set(changes) - {"metadata"}:
        raise invalid(
            "A canceled subscription can only have its metadata updated.",
            next(iter(set(changes) - {"metadata"})),
            "subscription_unexpected_state",
        )
    fields: dict[str, Any] = {}
    if "metadata" in changes:
        fields["metadata"] = merge_metadata(subscription.metadata, changes["metadata"])
    if "default_payment_method" in changes:
        fields["default_payment_method"] = optional_payment_method(
            changes["default_payment_method"], param="default_payment_method"
        )
    if "cancel_at_period_end" in changes:
        flag = changes["cancel_at_period_end"]
        if not isinstance(flag, bool):
            raise invalid("Invalid boolean: cancel_at_period_end.", "cancel_at_period_end")
        fields["cancel_at_period_end"] = flag
        fields["canceled_at"] = timezone.now() if flag else None
    items = None
    if "items" in changes:
        items = price_items(
            changes["items"], environment=subscription.environment, param="items", recurring=True
        )
        if items[0][0].currency != subscription.currency:
            raise invalid("New items must be in the subscription's currency.", "items")
    with _recording_changes(subscription, "customer.subscription.updated"):
        if items is not None:
            subscription.items.all().delete()
            _add_items(subscription, items)
        for name, value in fields.items():
            setattr(subscription, name, value)
    return subscription


@billing_service("subscription_cancel")
def subscription_cancel(
    *,
    subscription: Subscription,
    at_period_end: bool = False,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Subscription:
    subscription = _locked(subscription)
    if subscription.status in {
        Subscription.Status.CANCELED,
        Subscription.Status.INCOMPLETE_EXPIRED,
    }:
        raise invalid(
            f"This subscription is already {subscription.status}.",
            "subscription",
            "subscription_unexpected_state",
        )
    now = timezone.now()
    if at_period_end:
        _change(
            subscription,
            {"cancel_at_period_end": True, "canceled_at": now},
            "customer.subscription.updated",
        )
        return subscription
    subscription.status = Subscription.Status.CANCELED
    subscription.canceled_at = subscription.canceled_at or now
    subscription.ended_at = now
    subscription.save()
    _event("customer.subscription.deleted", subscription)
    return subscription


# --- refunds and disputes -----------------------------------------------------------------------


@billing_service("refund_create")
def refund_create(
    *,
    charge: Charge | None = None,
    payment_intent: PaymentIntent | None = None,
    amount: int | None = None,
    reason: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Refund:
    if charge is None:
        if payment_intent is None or payment_intent.latest_charge_id is None:
            raise invalid(
                "Pass a charge or a payment intent that has a charge.",
                "charge",
                "parameter_missing",
            )
        charge = payment_intent.latest_charge
    elif payment_intent is not None and charge.payment_intent_id != payment_intent.pk:
        raise invalid("The charge does not belong to this payment intent.", "payment_intent")
    if reason and reason not in Refund.Reason.values:
        raise invalid(
            f"Invalid reason: must be one of {', '.join(Refund.Reason.values)}.", "reason"
        )
    # Locked so that two concurrent partial refunds cannot refund more than was charged.
    charge = _locked(charge)
    if charge.status != Charge.Status.SUCCEEDED:
        raise invalid(
            f"Charge {charge.pk} has not succeeded; it cannot be refunded.",
            "charge",
            "charge_not_refundable",
        )
    remaining = charge.amount - charge.amount_refunded
    if remaining <= 0:
        raise invalid(
            f"Charge {charge.pk} has already been refunded.", "charge", "charge_already_refunded"
        )
    amount = remaining if amount is None else check_amount(amount, param="amount")
    if amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than the charge's unrefunded {remaining}.",
            "amount",
            "amount_too_large",
        )
    provider.get_provider().refund(
        environment=charge.environment,
        charge_id=charge.pk,
        amount=amount,
        # One key per refund of this charge: a retry of the same refund re-uses it.
        idempotency_key=f"{charge.pk}/refund/{charge.refunds.count()}",
    )
    refund = Refund.objects.create(
        environment=charge.environment,
        account=charge.account,
        charge=charge,
        payment_intent=charge.payment_intent,
        amount=amount,
        currency=charge.currency,
        reason=reason,
        metadata=merge_metadata({}, metadata or {}),
    )
    refunded = charge.amount_refunded + amount
    _change(
        charge,
        {"amount_refunded": refunded, "refunded": refunded == charge.amount},
        "charge.refunded",
    )
    _event("refund.created", refund)
    return refund


@billing_service("dispute_create")
def dispute_create(
    *,
    charge: Charge,
    reason: str = "general",
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> Dispute:
    """A chargeback, as the card network would open it (the simulator's stand-in)."""
    if reason not in DISPUTE_REASONS:
        raise invalid(f"Invalid reason: {reason!r} is not a dispute reason.", "reason")
    charge = _locked(charge)
    if charge.status != Charge.Status.SUCCEEDED:
        raise invalid(f"Charge {charge.pk} has not succeeded; it cannot be disputed.", "charge")
    if charge.disputed:
        raise invalid(
            f"Charge {charge.pk} is already disputed.", "charge", "charge_already_disputed"
        )
    dispute = Dispute.objects.create(
        environment=charge.environment,
        account=charge.account,
        charge=charge,
        payment_intent=charge.payment_intent,
        amount=charge.amount - charge.amount_refunded,
        currency=charge.currency,
        reason=reason,
    )
    charge.disputed = True
    charge.save()
    _event("charge.dispute.created", dispute)
    return dispute


# --- checkout -----------------------------------------------------------------------------------


@billing_service("checkout_session_create")
def checkout_session_create(
    *,
    environment: Environment,
    mode: str,
    line_items: list[dict],
    account: Account | None = None,
    customer: Customer | None = None,
    success_url: str = "",
    cancel_url: str = "",
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> CheckoutSession:
    """Stripe sends no event when a session is created."""
    if mode not in CheckoutSession.Mode.values:
        raise invalid(
            f"Invalid mode: must be one of {', '.join(CheckoutSession.Mode.values)}.", "mode"
        )
    items = price_items(
        line_items,
        environment=environment,
        param="line_items",
        recurring=mode == CheckoutSession.Mode.SUBSCRIPTION,
    )
    session = CheckoutSession.objects.create(
        environment=environment,
        account=_account_for(environment, account, customer),
        customer=customer,
        mode=mode,
        currency=items[0][0].currency,
        amount_total=sum(price.unit_amount * quantity for price, quantity in items),
        line_items=[
            {
                "price": price.pk,
                "quantity": quantity,
                "amount_total": price.unit_amount * quantity,
                "currency": price.currency,
                "description": price.product.name,
            }
            for price, quantity in items
        ],
        success_url=check_text(success_url, param="success_url", max_length=2000),
        cancel_url=check_text(cancel_url, param="cancel_url", max_length=2000),
        expires_at=timezone.now() + CHECKOUT_SESSION_LIFETIME,
        metadata=merge_metadata({}, metadata or {}),
    )
    return session


def _open_session(session: CheckoutSession) -> CheckoutSession:
    session = _locked(session)
    if session.status != CheckoutSession.Status.OPEN:
        raise invalid(
            f"This Checkout Session is {session.status}.",
            "session",
            "checkout_session_unexpected_state",
        )
    return session


def _finish_session(session: CheckoutSession, intent: PaymentIntent) -> CheckoutSession:
    """A decline leaves the session open (the buyer may try another card); a success or a
    delayed payment completes it."""
    if intent.status == PaymentIntent.Status.REQUIRES_PAYMENT_METHOD:
        session.payment_intent = intent
        session.save()
        return session
    session.payment_intent = intent
    session.status = CheckoutSession.Status.COMPLETE
    if intent.status == PaymentIntent.Status.SUCCEEDED:
        session.payment_status = CheckoutSession.PaymentStatus.PAID
    session.save()
    _event("checkout.session.completed", session)
    return session


@billing_service("checkout_session_complete")
def checkout_session_complete(
    *,
    session: CheckoutSession,
    payment_method: str,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> CheckoutSession:
    """The buyer pays. Subscription mode creates the subscription with its first invoice;
    after a decline, paying again pays that same invoice."""
    session = _open_session(session)
    if session.expires_at and session.expires_at <= timezone.now():
        raise invalid("This Checkout Session has expired.", "session", "checkout_session_expired")
    method = optional_payment_method(payment_method, param="payment_method")
    if not method:
        raise invalid(
            "Missing required param: payment_method.", "payment_method", "parameter_missing"
        )
    if session.mode == CheckoutSession.Mode.PAYMENT:
        intent = session.payment_intent
        if intent is None:
            intent = PaymentIntent.objects.create(
                environment=session.environment,
                account=session.account,
                customer=session.customer,
                amount=session.amount_total,
                currency=session.currency,
            )
            _event("payment_intent.created", intent)
        intent = _attempt_payment(_locked(intent), method)
    else:
        if session.customer is None:
            # A subscription needs a customer; Stripe's Checkout creates one the same way.
            session.customer = customer_create(
                environment=session.environment, account=session.account, cause=cause
            )
        if session.subscription is None:
            prices = {
                p.pk: p
                for p in Price.objects.filter(pk__in=[i["price"] for i in session.line_items])
            }
            session.subscription = _subscription_create(
                customer=session.customer,
                items=[(prices[item["price"]], item["quantity"]) for item in session.line_items],
                default_payment_method=method,
                metadata={},
            )
        else:
            _pay(_locked(session.subscription.latest_invoice), method)
        invoice = Invoice.objects.get(pk=session.subscription.latest_invoice_id)
        intent = invoice.payment_intent
    return _finish_session(session, intent)


@billing_service("checkout_session_expire")
def checkout_session_expire(
    *,
    session: CheckoutSession,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> CheckoutSession:
    session = _open_session(session)
    session.status = CheckoutSession.Status.EXPIRED
    session.expires_at = timezone.now()
    session.save()
    _event("checkout.session.expired", session)
    return session


@billing_service("checkout_session_settle")
def checkout_session_settle(
    *,
    session: CheckoutSession,
    succeeded: bool,
    idempotency_key: str | None = None,
    request_id: str = "",
    cause: Cause | None = None,
) -> CheckoutSession:
    """The delayed payment of a completed session (`pm_delayed_*`) succeeds or fails."""
    session = _locked(session)
    intent = session.payment_intent
    if (
        session.status != CheckoutSession.Status.COMPLETE
        or intent is None
        or intent.status != PaymentIntent.Status.PROCESSING
    ):
        raise invalid(
            "Only a completed session whose payment is still processing can settle.",
            "session",
            "checkout_session_unexpected_state",
        )
    intent = _settle_payment(intent, succeeded=succeeded)
    if intent.invoice_id:
        _after_invoice_payment(_locked(intent.invoice), intent)
    if succeeded:
        session.payment_status = CheckoutSession.PaymentStatus.PAID
        session.save()
        _event("checkout.session.async_payment_succeeded", session)
    else:
        _event("checkout.session.async_payment_failed", session)
    return session


# --- simulator controls -------------------------------------------------------------------------


def provider_fail_next(*, environment: Environment, count: int) -> None:
    """Make the simulated provider fail its next `count` calls in this environment with a
    retryable `ProviderError` (0 turns the switch off). Seen by every process."""
    provider.set_failures(
        environment=environment, count=check_amount(count, param="count", minimum=0)
    )
