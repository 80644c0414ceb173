"""Response schemas of the billing API: what `billing.snapshots` renders, typed for the OpenAPI
document, and the one Stripe list envelope (`StripeList[T]`) every list answers with.

The snapshots stay the single source of the JSON; these types describe it. They allow fields
they do not name (`extra="allow"`), so a field added to a snapshot reaches clients at once
instead of being dropped, and tests/security/test_hostile_api_schema.py checks answers against them.
A field that names another object is `Expandable`: an id, or the object when `expand` asks.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from ninja import Field
from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

Expandable = Annotated[
    str | dict[str, Any] | None,
    Field(description="An id, or the object itself when `expand` names this field"),
]
UnixTime = Annotated[int, Field(description="Unix time, seconds")]
Metadata = dict[str, str]


class Out(BaseModel):
    # A pydantic model, not a ninja `Schema`: `Schema` reads a dict through its attribute
    # getter, which would drop the fields a type does not name instead of passing them on.
    model_config = ConfigDict(extra="allow")


class StripeList(Out, Generic[T]):
    """Every list: newest first, `has_more` when another page follows; `url` is the list's path
    relative to a client's api_base (`/v1/customers`), which Stripe's SDKs page through."""

    object: Literal["list"]
    data: list[T]
    has_more: bool
    url: str


class Obj(Out):
    id: str
    object: str
    created: UnixTime
    livemode: bool


class BusinessProfile(Out):
    name: str


class AccountOut(Obj):
    object: Literal["account"]
    business_profile: BusinessProfile
    email: str | None
    country: str | None
    metadata: Metadata


class InvoiceSettingsOut(Out):
    default_payment_method: Expandable


class CustomerOut(Obj):
    object: Literal["customer"]
    address: dict[str, Any] | None
    balance: int
    currency: str | None
    deleted: bool
    description: str | None
    email: str | None
    invoice_settings: InvoiceSettingsOut
    metadata: Metadata
    name: str | None
    phone: str | None


class CustomerBalanceTransactionOut(Obj):
    object: Literal["customer_balance_transaction"]
    amount: int
    currency: str
    customer: Expandable
    description: str | None
    ending_balance: int
    metadata: Metadata
    type: str


class DeletedOut(Out):
    id: str
    object: str
    deleted: Literal[True]


class ProductOut(Obj):
    object: Literal["product"]
    active: bool
    description: str | None
    metadata: Metadata
    name: str


class RecurringOut(Out):
    interval: str
    interval_count: int


class PriceOut(Obj):
    object: Literal["price"]
    active: bool
    currency: str
    metadata: Metadata
    nickname: str | None
    product: Expandable
    recurring: RecurringOut | None
    type: str
    unit_amount: int


class SubscriptionItemOut(Obj):
    object: Literal["subscription_item"]
    price: PriceOut
    quantity: int
    subscription: str


class SubscriptionOut(Obj):
    object: Literal["subscription"]
    cancel_at_period_end: bool
    canceled_at: UnixTime | None
    currency: str
    current_period_end: UnixTime | None
    current_period_start: UnixTime | None
    customer: Expandable
    default_payment_method: Expandable
    ended_at: UnixTime | None
    items: StripeList[SubscriptionItemOut]
    latest_invoice: Expandable
    metadata: Metadata
    status: str


class InvoiceLineOut(Out):
    id: str
    object: Literal["line_item"]
    amount: int
    currency: str
    description: str | None
    invoice: str | None
    livemode: bool
    price: PriceOut | None
    quantity: int


class StatusTransitionsOut(Out):
    finalized_at: UnixTime | None
    paid_at: UnixTime | None
    voided_at: UnixTime | None


class InvoiceOut(Obj):
    object: Literal["invoice"]
    amount_due: int
    amount_paid: int
    amount_remaining: int
    attempt_count: int
    attempted: bool
    currency: str
    customer: Expandable
    description: str | None
    due_date: UnixTime | None
    lines: StripeList[InvoiceLineOut]
    metadata: Metadata
    number: str | None
    paid: bool
    payment_intent: Expandable
    status: str
    status_transitions: StatusTransitionsOut
    subscription: Expandable
    subtotal: int
    total: int


class PaymentErrorOut(Out):
    type: str
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class PaymentIntentOut(Obj):
    object: Literal["payment_intent"]
    amount: int
    amount_received: int
    canceled_at: UnixTime | None
    currency: str
    customer: Expandable
    description: str | None
    invoice: Expandable
    last_payment_error: PaymentErrorOut | None
    latest_charge: Expandable
    metadata: Metadata
    payment_method: Expandable
    status: str


class ChargeOut(Obj):
    object: Literal["charge"]
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    customer: Expandable
    disputed: bool
    failure_code: str | None
    failure_message: str | None
    invoice: Expandable
    metadata: Metadata
    outcome: dict[str, Any] | None
    paid: bool
    payment_intent: Expandable
    payment_method: Expandable
    refunded: bool
    status: str


class RefundOut(Obj):
    object: Literal["refund"]
    amount: int
    charge: Expandable
    currency: str
    metadata: Metadata
    payment_intent: Expandable
    reason: str | None
    status: str


class DisputeOut(Obj):
    object: Literal["dispute"]
    amount: int
    charge: Expandable
    currency: str
    metadata: Metadata
    payment_intent: Expandable
    reason: str
    status: str


class CheckoutLineItemOut(Out):
    price: str
    quantity: int
    amount_total: int
    currency: str
    description: str


class CheckoutSessionOut(Obj):
    object: Literal["checkout.session"]
    amount_total: int
    cancel_url: str | None
    currency: str
    customer: Expandable
    expires_at: UnixTime | None
    line_items: StripeList[CheckoutLineItemOut]
    metadata: Metadata
    mode: str
    payment_intent: Expandable
    payment_status: str
    status: str
    subscription: Expandable
    success_url: str | None


class EventDataOut(Out):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class EventRequestOut(Out):
    id: str | None
    idempotency_key: str | None


class EventOut(Out):
    id: str
    object: Literal["event"]
    type: str
    created: UnixTime
    livemode: bool
    account: str | None
    data: EventDataOut
    request: EventRequestOut


class CardErrorBody(Out):
    type: Literal["card_error"]
    code: str
    decline_code: str | None
    message: str
    param: str | None
    charge: str | None
    payment_intent: PaymentIntentOut


class CardErrorOut(Out):
    """402: the card was declined; the failed charge and its events are recorded."""

    error: CardErrorBody
