"""Billing resources of the API: Stripe's paths and shapes, JSON or form-encoded bodies.

Every handler fetches through `billing.selectors` with the key's environment (so another
environment's object is a 404) and writes through `billing.services`; POSTs go through
`idempotent`, which also stores the response for `Idempotency-Key` replays. `expand` (in the
query of a GET, in the body of a POST) replaces ids with their objects (`selectors.expand`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from pydantic import ConfigDict, ModelWrapValidatorHandler, model_validator

from billing import models as m
from billing import selectors, services
from billing.api_schemas import (
    AccountOut,
    CardErrorOut,
    ChargeOut,
    CheckoutSessionOut,
    CustomerBalanceTransactionOut,
    CustomerOut,
    DeletedOut,
    DisputeOut,
    EventOut,
    InvoiceOut,
    PaymentIntentOut,
    PriceOut,
    ProductOut,
    RefundOut,
    StripeList,
    SubscriptionOut,
)
from billing.api_support.auth import KeyAuth
from billing.api_support.bodies import coerce_form_values
from billing.api_support.idempotency import Answer, idempotent, request_id
from billing.api_support.lists import CreatedFilters, filter_created, paginate
from billing.errors import NotFoundError
from billing.events import event_envelope
from billing.snapshots import snapshot

VIEW = KeyAuth("billing.view")
SUPPORT = KeyAuth("billing.support")
MANAGE = KeyAuth("billing.manage")

# Answers are dumped with only the keys the snapshot has (`exclude_unset`): a response schema's
# optional field must not add a key (an event without `previous_attributes` has none).
router = Router(tags=["billing"], exclude_unset=True)

# Stripe's Connect header: act as (and see only) this connected account. Without it a key sees
# its whole environment, platform and connected accounts alike: it is the operator's key.
ACCOUNT_HEADER = "Stripe-Account"

# --- input types -------------------------------------------------------------------------------
# Types and sizes are checked here (so a bad field is a 400 naming it, and the OpenAPI document
# says what is accepted); business rules (known currency, metadata limits, state transitions)
# are the services' and come back as their errors.

# Money and counts are JSON integers and nothing else (`strict`): pydantic would otherwise turn
# `true` into 1 and `"250"` into 250 before the services' own type checks could refuse them.
Amount = Annotated[int, Field(strict=True, ge=0, le=99_999_999)]
PositiveAmount = Annotated[int, Field(strict=True, ge=1, le=99_999_999)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", description="ISO code, e.g. usd")]
ObjectId = Annotated[str, Field(min_length=1, max_length=40)]
PaymentMethod = Annotated[str, Field(max_length=100, description="e.g. pm_card_visa")]
Text = Annotated[str, Field(max_length=5000)]
Metadata = Annotated[
    dict[str, str],
    Field(
        description="Up to 50 keys of at most 40 characters, values of at most 500; "
        'on update a key set to "" is removed.'
    ),
]


# `customer`, `latest_charge.customer`, `data.customer` on a list: at most four levels, as Stripe.
ExpandPath = Annotated[
    str,
    Field(
        pattern=r"^[a-z_]+(\.[a-z_]+){0,3}$",
        max_length=200,
        description="A field to expand, e.g. customer, latest_charge, data.customer",
    ),
]
ExpandList = Annotated[list[ExpandPath], Field(max_length=20)]


class In(Schema):
    """Unknown parameters are rejected, as Stripe does, so a typo is not silently ignored.

    A form body's strings become the integers and booleans the fields take (Stripe's SDKs send
    `amount=2500`); a JSON body stays strict."""

    model_config = ConfigDict(extra="forbid")

    # A wrap validator, so it runs before ninja's own (which hands the fields on wrapped).
    @model_validator(mode="wrap")
    @classmethod
    def coerce_form_body(cls, data: Any, handler: ModelWrapValidatorHandler) -> Any:
        return handler(coerce_form_values(cls, data))


class Body(In):
    """A request body: its fields, and `expand` for the object in the answer."""

    expand: ExpandList = []

    def changes(self) -> dict:
        """Only the fields the client sent: an update leaves the others alone."""
        return self.model_dump(exclude_unset=True, exclude={"expand"})


class Address(In):
    line1: Annotated[str, Field(max_length=200)] | None = None
    line2: Annotated[str, Field(max_length=200)] | None = None
    city: Annotated[str, Field(max_length=200)] | None = None
    state: Annotated[str, Field(max_length=200)] | None = None
    postal_code: Annotated[str, Field(max_length=40)] | None = None
    country: Annotated[str, Field(max_length=2)] | None = None


class InvoiceSettings(In):
    default_payment_method: PaymentMethod | None = None


class CustomerCreate(Body):
    email: Annotated[str, Field(max_length=254)] = ""
    name: Annotated[str, Field(max_length=256)] = ""
    phone: Annotated[str, Field(max_length=40)] = ""
    description: Text = ""
    address: Address | None = None
    metadata: Metadata | None = None
    payment_method: PaymentMethod = ""
    invoice_settings: InvoiceSettings | None = None


class CustomerUpdate(Body):
    email: Annotated[str, Field(max_length=254)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    description: Text | None = None
    address: Address | None = None
    metadata: Metadata | None = None
    invoice_settings: InvoiceSettings | None = None


class CustomerBalanceTransactionCreate(Body):
    # Negative credits the customer, as in Stripe; 0 is refused by the service, naming amount.
    amount: Annotated[int, Field(strict=True, ge=-99_999_999, le=99_999_999)]
    currency: Currency
    description: Annotated[str, Field(max_length=350)] = ""
    metadata: Metadata | None = None


class AccountCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Annotated[str, Field(max_length=254)] = ""
    country: Annotated[str, Field(max_length=2)] = ""
    metadata: Metadata | None = None


class ProductCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=250)]
    description: Text = ""
    metadata: Metadata | None = None


class Recurring(In):
    interval: Literal["day", "week", "month", "year"]
    interval_count: Annotated[int, Field(strict=True, ge=1, le=365)] = 1


class PriceCreate(Body):
    product: ObjectId
    currency: Currency
    unit_amount: Amount
    recurring: Recurring | None = None
    nickname: Annotated[str, Field(max_length=250)] = ""
    metadata: Metadata | None = None


class SubscriptionItemIn(In):
    price: ObjectId
    quantity: Quantity = 1


class SubscriptionCreate(Body):
    customer: ObjectId
    items: Annotated[list[SubscriptionItemIn], Field(min_length=1, max_length=20)]
    default_payment_method: PaymentMethod = ""
    metadata: Metadata | None = None


class SubscriptionUpdate(Body):
    items: Annotated[list[SubscriptionItemIn], Field(min_length=1, max_length=20)] | None = None
    cancel_at_period_end: bool | None = None
    default_payment_method: PaymentMethod | None = None
    metadata: Metadata | None = None


class SubscriptionCancel(Body):
    at_period_end: bool = False


class InvoiceLineIn(In):
    amount: Amount | None = None
    currency: Currency | None = None
    description: Annotated[str, Field(max_length=500)] = ""
    quantity: Quantity = 1
    price: ObjectId | None = None


class InvoiceCreate(Body):
    customer: ObjectId
    lines: Annotated[list[InvoiceLineIn], Field(max_length=250)] = []
    subscription: ObjectId | None = None
    description: Text = ""
    metadata: Metadata | None = None


class InvoiceUpdate(Body):
    description: Text | None = None
    metadata: Metadata | None = None


class InvoicePay(Body):
    payment_method: PaymentMethod = ""


class PaymentIntentCreate(Body):
    amount: PositiveAmount
    currency: Currency
    customer: ObjectId | None = None
    payment_method: PaymentMethod = ""
    description: Text = ""
    metadata: Metadata | None = None
    confirm: bool = False


class PaymentIntentUpdate(Body):
    amount: PositiveAmount | None = None
    currency: Currency | None = None
    payment_method: PaymentMethod | None = None
    description: Text | None = None
    metadata: Metadata | None = None


class PaymentIntentConfirm(Body):
    payment_method: PaymentMethod = ""


class RefundCreate(Body):
    charge: ObjectId | None = None
    payment_intent: ObjectId | None = None
    amount: PositiveAmount | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer", ""] = ""
    metadata: Metadata | None = None


class DisputeCreate(Body):
    charge: ObjectId
    reason: Annotated[str, Field(max_length=40)] = "general"


class CheckoutLineItem(In):
    price: ObjectId
    quantity: Quantity = 1


class CheckoutSessionCreate(Body):
    mode: Literal["payment", "subscription"]
    line_items: Annotated[list[CheckoutLineItem], Field(min_length=1, max_length=100)]
    customer: ObjectId | None = None
    success_url: Annotated[str, Field(max_length=2000)] = ""
    cancel_url: Annotated[str, Field(max_length=2000)] = ""
    metadata: Metadata | None = None


class CheckoutSessionComplete(Body):
    payment_method: PaymentMethod


class ExpandParams(Schema):
    """`expand[]=customer` (curl) or `expand[0]=customer` (Stripe's SDKs)."""

    expand: ExpandList = Field([], alias="expand[]")


class ListParams(ExpandParams, CreatedFilters):
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    starting_after: str | None = None
    ending_before: str | None = None


# --- helpers -----------------------------------------------------------------------------------


def _account(request: HttpRequest) -> m.Account | None:
    """The connected account named by the `Stripe-Account` header, if any."""
    if not hasattr(request, "billflow_account"):
        account_id = request.headers.get(ACCOUNT_HEADER, "").strip()
        request.billflow_account = (
            selectors.get_object(m.Account, request.environment, account_id, param=ACCOUNT_HEADER)
            if account_id
            else None
        )
    return request.billflow_account


def _get(request: HttpRequest, model: type[m.StripeObject], id: str, param: str = "id") -> Any:
    obj = selectors.get_object(model, request.environment, id, param=param)
    account = _account(request)
    if account is not None and obj.account_id != account.pk:
        raise NotFoundError(f"No such {model.OBJECT.replace('_', ' ')}: '{id}'", param=param)
    return obj


def _scoped(request: HttpRequest, queryset):
    account = _account(request)
    return queryset if account is None else queryset.filter(account=account)


def _created(queryset, page: ListParams):
    """Stripe's `created` filters, on every list: exact (that second), gt, gte, lt, lte."""
    return filter_created(queryset, page)


def _list(request: HttpRequest, queryset, page: ListParams, render=snapshot) -> dict:
    body = paginate(
        request,
        _created(_scoped(request, queryset), page),
        render,
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    return _expanded(request, body, page.expand)


def _expanded(request: HttpRequest, body: dict, paths: list[str]) -> dict:
    if not paths:
        return body
    return selectors.expand(body, paths, environment=request.environment)


def _render(request: HttpRequest, obj: Any, options: ExpandParams) -> dict:
    return _expanded(request, snapshot(obj), options.expand)


def _write(
    request: HttpRequest, payload: Body | None, write, *, declinable: bool = False
) -> HttpResponse:
    """Run `write(idempotency_key, request_id)` -> object once per Idempotency-Key, and answer
    it expanded as `payload.expand` asks.

    `declinable`: the write may charge a card (a payment intent confirmed); a decline answers
    402 with Stripe's `card_error`, and the failed charge and its events are committed all the
    same, with the stored answer (an `Answer` is not an exception, so nothing rolls back)."""
    paths = payload.expand if payload is not None else []

    def run(key: str | None) -> dict | Answer:
        obj = write(key, request_id(request))
        body = _expanded(request, snapshot(obj), paths)
        if declinable and _declined(obj):
            return Answer(402, _card_error(obj, body))
        return body

    return idempotent(request, run)


def _declined(intent: m.PaymentIntent) -> bool:
    charge = intent.latest_charge
    return bool(intent.last_payment_error) and charge is not None and charge.status == "failed"


def _card_error(intent: m.PaymentIntent, body: dict) -> dict:
    """Stripe's 402 for a declined confirm: the decline's codes, the failed charge and the
    payment intent as it now is (its `last_payment_error` says the same)."""
    error = intent.last_payment_error or {}
    return {
        "error": {
            "type": "card_error",
            "code": error.get("code") or "card_declined",
            "decline_code": error.get("decline_code") or None,
            "message": error.get("message") or "Your card was declined.",
            "param": None,
            "charge": intent.latest_charge_id,
            "payment_intent": body,
        }
    }


# --- connected accounts ------------------------------------------------------------------------


@router.post("/accounts", auth=MANAGE, response=AccountOut, summary="Create a connected account")
def account_create(request: HttpRequest, payload: AccountCreate) -> HttpResponse:
    return _write(
        request,
        payload,
        lambda key, req: services.account_create(
            environment=request.environment,
            idempotency_key=key,
            request_id=req,
            **payload.changes(),
        ),
    )


@router.get(
    "/accounts", auth=VIEW, response=StripeList[AccountOut], summary="List connected accounts"
)
def account_list(request: HttpRequest, page: Query[ListParams]) -> dict:
    # Not narrowed by Stripe-Account: the platform's connected accounts are listed as a whole.
    body = paginate(
        request,
        _created(selectors.objects_in(m.Account, request.environment), page),
        snapshot,
        limit=page.limit,
        starting_after=page.starting_after,
        ending_before=page.ending_before,
    )
    return _expanded(request, body, page.expand)


@router.get(
    "/accounts/{account_id}", auth=VIEW, response=AccountOut, summary="Retrieve a connected account"
)
def account_retrieve(request: HttpRequest, account_id: str, options: Query[ExpandParams]) -> dict:
    return _render(
        request, selectors.get_object(m.Account, request.environment, account_id), options
    )


# --- customers ---------------------------------------------------------------------------------


@router.post("/customers", auth=MANAGE, response=CustomerOut, summary="Create a customer")
def customer_create(request: HttpRequest, payload: CustomerCreate) -> HttpResponse:
    data = payload.changes()
    method = data.pop("payment_method", "")
    settings = data.pop("invoice_settings", None) or {}
    method = settings.get("default_payment_method") or method
    return _write(
        request,
        payload,
        lambda key, req: services.customer_create(
            environment=request.environment,
            account=_account(request),
            default_payment_method=method or "",
            idempotency_key=key,
            request_id=req,
            **data,
        ),
    )


@router.get("/customers", auth=VIEW, response=StripeList[CustomerOut], summary="List customers")
def customer_list(request: HttpRequest, page: Query[ListParams], email: str | None = None) -> dict:
    queryset = selectors.objects_in(m.Customer, request.environment).filter(deleted=False)
    if email:
        queryset = queryset.filter(email__iexact=email)
    return _list(request, queryset, page)


@router.get(
    "/customers/{customer_id}", auth=VIEW, response=CustomerOut, summary="Retrieve a customer"
)
def customer_retrieve(request: HttpRequest, customer_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Customer, customer_id), options)


@router.post(
    "/customers/{customer_id}", auth=SUPPORT, response=CustomerOut, summary="Update a customer"
)
def customer_update(
    request: HttpRequest, customer_id: str, payload: CustomerUpdate
) -> HttpResponse:
    customer = _get(request, m.Customer, customer_id)
    return _write(
        request,
        payload,
        lambda key, req: services.customer_update(
            customer=customer, changes=payload.changes(), idempotency_key=key, request_id=req
        ),
    )


@router.delete(
    "/customers/{customer_id}", auth=MANAGE, response=DeletedOut, summary="Delete a customer"
)
def customer_delete(request: HttpRequest, customer_id: str) -> HttpResponse:
    customer = _get(request, m.Customer, customer_id)

    def run(key: str | None) -> dict:
        deleted = services.customer_delete(
            customer=customer, idempotency_key=key, request_id=request_id(request)
        )
        # Stripe's answer to a delete: just the id, the type and `deleted`.
        return {"id": deleted.pk, "object": "customer", "deleted": True}

    return idempotent(request, run)


@router.post(
    "/customers/{customer_id}/balance_transactions",
    auth=SUPPORT,
    response=CustomerBalanceTransactionOut,
    summary="Credit or debit a customer's balance",
)
def customer_balance_transaction_create(
    request: HttpRequest, customer_id: str, payload: CustomerBalanceTransactionCreate
) -> HttpResponse:
    customer = _get(request, m.Customer, customer_id)
    return _write(
        request,
        payload,
        lambda key, req: services.customer_balance_transaction_create(
            customer=customer,
            amount=payload.amount,
            currency=payload.currency,
            description=payload.description,
            metadata=payload.metadata,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.get(
    "/customers/{customer_id}/balance_transactions",
    auth=VIEW,
    response=StripeList[CustomerBalanceTransactionOut],
    summary="List a customer's balance transactions",
)
def customer_balance_transaction_list(
    request: HttpRequest, customer_id: str, page: Query[ListParams]
) -> dict:
    customer = _get(request, m.Customer, customer_id)
    queryset = selectors.objects_in(m.CustomerBalanceTransaction, request.environment)
    return _list(request, queryset.filter(customer=customer), page)


@router.get(
    "/customers/{customer_id}/balance_transactions/{transaction_id}",
    auth=VIEW,
    response=CustomerBalanceTransactionOut,
    summary="Retrieve a customer balance transaction",
)
def customer_balance_transaction_retrieve(
    request: HttpRequest, customer_id: str, transaction_id: str, options: Query[ExpandParams]
) -> dict:
    customer = _get(request, m.Customer, customer_id)
    entry = _get(request, m.CustomerBalanceTransaction, transaction_id)
    if entry.customer_id != customer.pk:
        raise NotFoundError(f"No such customer balance transaction: '{transaction_id}'", param="id")
    return _render(request, entry, options)


# --- products and prices -----------------------------------------------------------------------


@router.post("/products", auth=MANAGE, response=ProductOut, summary="Create a product")
def product_create(request: HttpRequest, payload: ProductCreate) -> HttpResponse:
    return _write(
        request,
        payload,
        lambda key, req: services.product_create(
            environment=request.environment,
            account=_account(request),
            idempotency_key=key,
            request_id=req,
            **payload.changes(),
        ),
    )


@router.get("/products", auth=VIEW, response=StripeList[ProductOut], summary="List products")
def product_list(request: HttpRequest, page: Query[ListParams], active: bool | None = None) -> dict:
    queryset = selectors.objects_in(m.Product, request.environment)
    if active is not None:
        queryset = queryset.filter(active=active)
    return _list(request, queryset, page)


@router.get("/products/{product_id}", auth=VIEW, response=ProductOut, summary="Retrieve a product")
def product_retrieve(request: HttpRequest, product_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Product, product_id), options)


@router.post("/prices", auth=MANAGE, response=PriceOut, summary="Create a price")
def price_create(request: HttpRequest, payload: PriceCreate) -> HttpResponse:
    product = _get(request, m.Product, payload.product, param="product")
    recurring = payload.recurring
    return _write(
        request,
        payload,
        lambda key, req: services.price_create(
            product=product,
            currency=payload.currency.lower(),
            unit_amount=payload.unit_amount,
            recurring_interval=recurring.interval if recurring else "",
            recurring_interval_count=recurring.interval_count if recurring else 1,
            nickname=payload.nickname,
            metadata=payload.metadata,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.get("/prices", auth=VIEW, response=StripeList[PriceOut], summary="List prices")
def price_list(request: HttpRequest, page: Query[ListParams], product: str | None = None) -> dict:
    queryset = selectors.objects_in(m.Price, request.environment).select_related("product")
    if product:
        queryset = queryset.filter(product_id=product)
    return _list(request, queryset, page)


@router.get("/prices/{price_id}", auth=VIEW, response=PriceOut, summary="Retrieve a price")
def price_retrieve(request: HttpRequest, price_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Price, price_id), options)


# --- subscriptions -----------------------------------------------------------------------------


@router.post(
    "/subscriptions", auth=MANAGE, response=SubscriptionOut, summary="Create a subscription"
)
def subscription_create(request: HttpRequest, payload: SubscriptionCreate) -> HttpResponse:
    customer = _get(request, m.Customer, payload.customer, param="customer")
    items = [
        {
            "price": _get(request, m.Price, item.price, param=f"items[{i}][price]"),
            "quantity": item.quantity,
        }
        for i, item in enumerate(payload.items)
    ]
    return _write(
        request,
        payload,
        lambda key, req: services.subscription_create(
            customer=customer,
            items=items,
            default_payment_method=payload.default_payment_method,
            metadata=payload.metadata,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.get(
    "/subscriptions", auth=VIEW, response=StripeList[SubscriptionOut], summary="List subscriptions"
)
def subscription_list(
    request: HttpRequest,
    page: Query[ListParams],
    customer: str | None = None,
    status: str | None = None,
) -> dict:
    queryset = selectors.objects_in(m.Subscription, request.environment)
    if customer:
        queryset = queryset.filter(customer_id=customer)
    if status:
        queryset = queryset.filter(status=status)
    return _list(request, queryset, page)


@router.get(
    "/subscriptions/{subscription_id}",
    auth=VIEW,
    response=SubscriptionOut,
    summary="Retrieve a subscription",
)
def subscription_retrieve(
    request: HttpRequest, subscription_id: str, options: Query[ExpandParams]
) -> dict:
    return _render(request, _get(request, m.Subscription, subscription_id), options)


@router.post(
    "/subscriptions/{subscription_id}",
    auth=MANAGE,
    response=SubscriptionOut,
    summary="Update a subscription",
)
def subscription_update(
    request: HttpRequest, subscription_id: str, payload: SubscriptionUpdate
) -> HttpResponse:
    subscription = _get(request, m.Subscription, subscription_id)
    return _write(
        request,
        payload,
        lambda key, req: services.subscription_update(
            subscription=subscription,
            changes=payload.changes(),
            idempotency_key=key,
            request_id=req,
        ),
    )


def _cancel_subscription(
    request: HttpRequest, subscription_id: str, payload: SubscriptionCancel | None
) -> HttpResponse:
    subscription = _get(request, m.Subscription, subscription_id)
    at_period_end = bool(payload and payload.at_period_end)
    return _write(
        request,
        payload,
        lambda key, req: services.subscription_cancel(
            subscription=subscription,
            at_period_end=at_period_end,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    auth=MANAGE,
    response=SubscriptionOut,
    summary="Cancel a subscription",
)
def subscription_cancel(
    request: HttpRequest, subscription_id: str, payload: SubscriptionCancel | None = None
) -> HttpResponse:
    return _cancel_subscription(request, subscription_id, payload)


@router.delete(
    "/subscriptions/{subscription_id}",
    auth=MANAGE,
    response=SubscriptionOut,
    summary="Cancel a subscription now",
)
def subscription_delete(request: HttpRequest, subscription_id: str) -> HttpResponse:
    return _cancel_subscription(request, subscription_id, None)


# --- invoices ----------------------------------------------------------------------------------


@router.post("/invoices", auth=MANAGE, response=InvoiceOut, summary="Create a draft invoice")
def invoice_create(request: HttpRequest, payload: InvoiceCreate) -> HttpResponse:
    customer = _get(request, m.Customer, payload.customer, param="customer")
    subscription = (
        _get(request, m.Subscription, payload.subscription, param="subscription")
        if payload.subscription
        else None
    )
    lines = []
    for i, line in enumerate(payload.lines):
        row = line.model_dump(exclude_unset=True)
        if line.price:
            row["price"] = _get(request, m.Price, line.price, param=f"lines[{i}][price]")
        if line.currency:
            row["currency"] = line.currency.lower()
        lines.append(row)
    return _write(
        request,
        payload,
        lambda key, req: services.invoice_create(
            customer=customer,
            lines=lines,
            subscription=subscription,
            description=payload.description,
            metadata=payload.metadata,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.get("/invoices", auth=VIEW, response=StripeList[InvoiceOut], summary="List invoices")
def invoice_list(
    request: HttpRequest,
    page: Query[ListParams],
    customer: str | None = None,
    subscription: str | None = None,
    status: str | None = None,
) -> dict:
    queryset = selectors.objects_in(m.Invoice, request.environment)
    if customer:
        queryset = queryset.filter(customer_id=customer)
    if subscription:
        queryset = queryset.filter(subscription_id=subscription)
    if status:
        queryset = queryset.filter(status=status)
    return _list(request, queryset, page)


@router.get("/invoices/{invoice_id}", auth=VIEW, response=InvoiceOut, summary="Retrieve an invoice")
def invoice_retrieve(request: HttpRequest, invoice_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Invoice, invoice_id), options)


@router.post(
    "/invoices/{invoice_id}", auth=MANAGE, response=InvoiceOut, summary="Update a draft invoice"
)
def invoice_update(request: HttpRequest, invoice_id: str, payload: InvoiceUpdate) -> HttpResponse:
    invoice = _get(request, m.Invoice, invoice_id)
    return _write(
        request,
        payload,
        lambda key, req: services.invoice_update(
            invoice=invoice, changes=payload.changes(), idempotency_key=key, request_id=req
        ),
    )


@router.post(
    "/invoices/{invoice_id}/finalize",
    auth=MANAGE,
    response=InvoiceOut,
    summary="Finalize an invoice",
)
def invoice_finalize(
    request: HttpRequest, invoice_id: str, payload: Body | None = None
) -> HttpResponse:
    invoice = _get(request, m.Invoice, invoice_id)
    return _write(
        request,
        payload,
        lambda key, req: services.invoice_finalize(
            invoice=invoice, idempotency_key=key, request_id=req
        ),
    )


@router.post(
    "/invoices/{invoice_id}/pay", auth=MANAGE, response=InvoiceOut, summary="Pay an invoice"
)
def invoice_pay(
    request: HttpRequest, invoice_id: str, payload: InvoicePay | None = None
) -> HttpResponse:
    invoice = _get(request, m.Invoice, invoice_id)
    method = payload.payment_method if payload else ""
    return _write(
        request,
        payload,
        lambda key, req: services.invoice_pay(
            invoice=invoice, payment_method=method, idempotency_key=key, request_id=req
        ),
    )


@router.post(
    "/invoices/{invoice_id}/void", auth=MANAGE, response=InvoiceOut, summary="Void an invoice"
)
def invoice_void(
    request: HttpRequest, invoice_id: str, payload: Body | None = None
) -> HttpResponse:
    invoice = _get(request, m.Invoice, invoice_id)
    return _write(
        request,
        payload,
        lambda key, req: services.invoice_void(
            invoice=invoice, idempotency_key=key, request_id=req
        ),
    )


# --- payment intents ---------------------------------------------------------------------------


@router.post(
    "/payment_intents",
    auth=MANAGE,
    response={200: PaymentIntentOut, 402: CardErrorOut},
    summary="Create a payment intent",
)
def payment_intent_create(request: HttpRequest, payload: PaymentIntentCreate) -> HttpResponse:
    customer = (
        _get(request, m.Customer, payload.customer, param="customer") if payload.customer else None
    )
    return _write(
        request,
        payload,
        lambda key, req: services.payment_intent_create(
            environment=request.environment,
            account=_account(request),
            amount=payload.amount,
            currency=payload.currency.lower(),
            customer=customer,
            payment_method=payload.payment_method,
            description=payload.description,
            metadata=payload.metadata,
            confirm=payload.confirm,
            idempotency_key=key,
            request_id=req,
        ),
        declinable=True,
    )


@router.get(
    "/payment_intents",
    auth=VIEW,
    response=StripeList[PaymentIntentOut],
    summary="List payment intents",
)
def payment_intent_list(
    request: HttpRequest, page: Query[ListParams], customer: str | None = None
) -> dict:
    queryset = selectors.objects_in(m.PaymentIntent, request.environment)
    if customer:
        queryset = queryset.filter(customer_id=customer)
    return _list(request, queryset, page)


@router.get(
    "/payment_intents/{intent_id}",
    auth=VIEW,
    response=PaymentIntentOut,
    summary="Retrieve a payment intent",
)
def payment_intent_retrieve(
    request: HttpRequest, intent_id: str, options: Query[ExpandParams]
) -> dict:
    return _render(request, _get(request, m.PaymentIntent, intent_id), options)


@router.post(
    "/payment_intents/{intent_id}",
    auth=MANAGE,
    response=PaymentIntentOut,
    summary="Update a payment intent",
)
def payment_intent_update(
    request: HttpRequest, intent_id: str, payload: PaymentIntentUpdate
) -> HttpResponse:
    intent = _get(request, m.PaymentIntent, intent_id)
    changes = payload.changes()
    if changes.get("currency"):
        changes["currency"] = changes["currency"].lower()
    return _write(
        request,
        payload,
        lambda key, req: services.payment_intent_update(
            payment_intent=intent, changes=changes, idempotency_key=key, request_id=req
        ),
    )


@router.post(
    "/payment_intents/{intent_id}/confirm",
    auth=MANAGE,
    response={200: PaymentIntentOut, 402: CardErrorOut},
    summary="Confirm a payment intent",
)
def payment_intent_confirm(
    request: HttpRequest, intent_id: str, payload: PaymentIntentConfirm | None = None
) -> HttpResponse:
    intent = _get(request, m.PaymentIntent, intent_id)
    method = payload.payment_method if payload else ""
    return _write(
        request,
        payload,
        lambda key, req: services.payment_intent_confirm(
            payment_intent=intent, payment_method=method, idempotency_key=key, request_id=req
        ),
        declinable=True,
    )


@router.post(
    "/payment_intents/{intent_id}/cancel",
    auth=MANAGE,
    response=PaymentIntentOut,
    summary="Cancel a payment intent",
)
def payment_intent_cancel(
    request: HttpRequest, intent_id: str, payload: Body | None = None
) -> HttpResponse:
    intent = _get(request, m.PaymentIntent, intent_id)
    return _write(
        request,
        payload,
        lambda key, req: services.payment_intent_cancel(
            payment_intent=intent, idempotency_key=key, request_id=req
        ),
    )


# --- charges, refunds and disputes -------------------------------------------------------------


@router.get("/charges", auth=VIEW, response=StripeList[ChargeOut], summary="List charges")
def charge_list(
    request: HttpRequest,
    page: Query[ListParams],
    customer: str | None = None,
    payment_intent: str | None = None,
) -> dict:
    queryset = selectors.objects_in(m.Charge, request.environment)
    if customer:
        queryset = queryset.filter(customer_id=customer)
    if payment_intent:
        queryset = queryset.filter(payment_intent_id=payment_intent)
    return _list(request, queryset, page)


@router.get("/charges/{charge_id}", auth=VIEW, response=ChargeOut, summary="Retrieve a charge")
def charge_retrieve(request: HttpRequest, charge_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Charge, charge_id), options)


@router.post("/refunds", auth=SUPPORT, response=RefundOut, summary="Refund a charge")
def refund_create(request: HttpRequest, payload: RefundCreate) -> HttpResponse:
    charge = _get(request, m.Charge, payload.charge, param="charge") if payload.charge else None
    intent = (
        _get(request, m.PaymentIntent, payload.payment_intent, param="payment_intent")
        if payload.payment_intent
        else None
    )
    return _write(
        request,
        payload,
        lambda key, req: services.refund_create(
            charge=charge,
            payment_intent=intent,
            amount=payload.amount,
            reason=payload.reason,
            metadata=payload.metadata,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.get("/refunds", auth=VIEW, response=StripeList[RefundOut], summary="List refunds")
def refund_list(
    request: HttpRequest,
    page: Query[ListParams],
    charge: str | None = None,
    payment_intent: str | None = None,
) -> dict:
    queryset = selectors.objects_in(m.Refund, request.environment)
    if charge:
        queryset = queryset.filter(charge_id=charge)
    if payment_intent:
        queryset = queryset.filter(payment_intent_id=payment_intent)
    return _list(request, queryset, page)


@router.get("/refunds/{refund_id}", auth=VIEW, response=RefundOut, summary="Retrieve a refund")
def refund_retrieve(request: HttpRequest, refund_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Refund, refund_id), options)


@router.post(
    "/disputes", auth=MANAGE, response=DisputeOut, summary="Simulate a chargeback on a charge"
)
def dispute_create(request: HttpRequest, payload: DisputeCreate) -> HttpResponse:
    charge = _get(request, m.Charge, payload.charge, param="charge")
    return _write(
        request,
        payload,
        lambda key, req: services.dispute_create(
            charge=charge, reason=payload.reason, idempotency_key=key, request_id=req
        ),
    )


@router.get("/disputes", auth=VIEW, response=StripeList[DisputeOut], summary="List disputes")
def dispute_list(request: HttpRequest, page: Query[ListParams], charge: str | None = None) -> dict:
    queryset = selectors.objects_in(m.Dispute, request.environment)
    if charge:
        queryset = queryset.filter(charge_id=charge)
    return _list(request, queryset, page)


@router.get("/disputes/{dispute_id}", auth=VIEW, response=DisputeOut, summary="Retrieve a dispute")
def dispute_retrieve(request: HttpRequest, dispute_id: str, options: Query[ExpandParams]) -> dict:
    return _render(request, _get(request, m.Dispute, dispute_id), options)


# --- checkout sessions -------------------------------------------------------------------------


@router.post(
    "/checkout/sessions",
    auth=MANAGE,
    response=CheckoutSessionOut,
    summary="Create a checkout session",
)
def checkout_session_create(request: HttpRequest, payload: CheckoutSessionCreate) -> HttpResponse:
    customer = (
        _get(request, m.Customer, payload.customer, param="customer") if payload.customer else None
    )
    line_items = [
        {
            "price": _get(request, m.Price, item.price, param=f"line_items[{i}][price]"),
            "quantity": item.quantity,
        }
        for i, item in enumerate(payload.line_items)
    ]
    return _write(
        request,
        payload,
        lambda key, req: services.checkout_session_create(
            environment=request.environment,
            account=_account(request),
            mode=payload.mode,
            line_items=line_items,
            customer=customer,
            success_url=payload.success_url,
            cancel_url=payload.cancel_url,
            metadata=payload.metadata,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.get(
    "/checkout/sessions",
    auth=VIEW,
    response=StripeList[CheckoutSessionOut],
    summary="List checkout sessions",
)
def checkout_session_list(
    request: HttpRequest, page: Query[ListParams], customer: str | None = None
) -> dict:
    queryset = selectors.objects_in(m.CheckoutSession, request.environment)
    if customer:
        queryset = queryset.filter(customer_id=customer)
    return _list(request, queryset, page)


@router.get(
    "/checkout/sessions/{session_id}",
    auth=VIEW,
    response=CheckoutSessionOut,
    summary="Retrieve a checkout session",
)
def checkout_session_retrieve(
    request: HttpRequest, session_id: str, options: Query[ExpandParams]
) -> dict:
    return _render(request, _get(request, m.CheckoutSession, session_id), options)


@router.post(
    "/checkout/sessions/{session_id}/complete",
    auth=MANAGE,
    response=CheckoutSessionOut,
    summary="Pay a checkout session",
)
def checkout_session_complete(
    request: HttpRequest, session_id: str, payload: CheckoutSessionComplete
) -> HttpResponse:
    session = _get(request, m.CheckoutSession, session_id)
    return _write(
        request,
        payload,
        lambda key, req: services.checkout_session_complete(
            session=session,
            payment_method=payload.payment_method,
            idempotency_key=key,
            request_id=req,
        ),
    )


@router.post(
    "/checkout/sessions/{session_id}/expire",
    auth=MANAGE,
    response=CheckoutSessionOut,
    summary="Expire a checkout session",
)
def checkout_session_expire(
    request: HttpRequest, session_id: str, payload: Body | None = None
) -> HttpResponse:
    session = _get(request, m.CheckoutSession, session_id)
    return _write(
        request,
        payload,
        lambda key, req: services.checkout_session_expire(
            session=session, idempotency_key=key, request_id=req
        ),
    )


# --- events ------------------------------------------------------------------------------------


@router.get("/events", auth=VIEW, response=StripeList[EventOut], summary="List events")
def event_list(request: HttpRequest, page: Query[ListParams], type: str | None = None) -> dict:
    queryset = selectors.events_in(request.environment).select_related("environment")
    if type:
        # Stripe allows one trailing wildcard: "customer.*".
        if type.endswith(".*"):
            queryset = queryset.filter(type__startswith=type[:-1])
        else:
            queryset = queryset.filter(type=type)
    return _list(request, queryset, page, render=event_envelope)


@router.get("/events/{event_id}", auth=VIEW, response=EventOut, summary="Retrieve an event")
def event_retrieve(request: HttpRequest, event_id: str) -> dict:
    event = selectors.get_event(request.environment, event_id)
    account = _account(request)
    if account is not None and event.account_id != account.pk:
        raise NotFoundError(f"No such event: '{event_id}'", param="id")
    return event_envelope(event)
