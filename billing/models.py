"""Stripe-shaped billing objects. Rows change only through `billing.services`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# Ids are made on the ground floor (request ids need them too); billing objects and their
# migrations name them from here.
from backoffice.ids import ID_ALPHABET, ID_LENGTH, new_id  # noqa: F401


class Environment(models.Model):
    """`live` or a sandbox. Nothing crosses environments."""

    class Kind(models.TextChoices):
        LIVE = "live", "Live"
        SANDBOX = "sandbox", "Sandbox"

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SANDBOX)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-kind", "slug"]  # live first

    def __str__(self) -> str:
        return self.name

    @property
    def livemode(self) -> bool:
        return self.kind == self.Kind.LIVE


class StripeObject(models.Model):
    """Columns every billing object has. `account` null means the platform account."""

    ID_PREFIX = ""
    OBJECT = ""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "billing.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        abstract = True
        ordering = ["-created"]

    def save(self, *args, **kwargs) -> None:
        # The id is assigned once, on first save; this is not business logic.
        if not self.id:
            self.id = new_id(self.ID_PREFIX)
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.id

    @property
    def livemode(self) -> bool:
        return self.environment.livemode


class Account(StripeObject):
    """A Connect connected account (`acct_`). Objects with `account=None` belong to the platform."""

    ID_PREFIX = "acct"
    OBJECT = "account"

    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    country = models.CharField(max_length=2, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Customer(StripeObject):
    ID_PREFIX = "cus"
    OBJECT = "customer"

    email = models.EmailField(blank=True, db_index=True)
    name = models.CharField(max_length=256, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    description = models.TextField(blank=True)
    # Stripe's address shape: line1, line2, city, state, postal_code, country (ISO alpha-2).
    address = models.JSONField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    balance = models.BigIntegerField(default=0)
    default_payment_method = models.CharField(max_length=100, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    deleted = models.BooleanField(default=False)

    class Meta(StripeObject.Meta):
        pass


class CustomerBalanceTransaction(StripeObject):
    """A change to a customer's credit balance. Negative `amount` is a credit to the customer
    (it lowers what they owe), as in Stripe; `ending_balance` is the balance right after it."""

    ID_PREFIX = "cbtxn"
    OBJECT = "customer_balance_transaction"

    class Type(models.TextChoices):
        ADJUSTMENT = "adjustment"

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="balance_transactions"
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.TextField(blank=True)
    ending_balance = models.BigIntegerField()
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.ADJUSTMENT)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class Product(StripeObject):
    ID_PREFIX = "prod"
    OBJECT = "product"

    name = models.CharField(max_length=250)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class Price(StripeObject):
    ID_PREFIX = "price"
    OBJECT = "price"

    class Interval(models.TextChoices):
        DAY = "day"
        WEEK = "week"
        MONTH = "month"
        YEAR = "year"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices")
    currency = models.CharField(max_length=3)
    unit_amount = models.BigIntegerField()
    # Empty interval means a one-time price.
    recurring_interval = models.CharField(max_length=5, choices=Interval.choices, blank=True)
    recurring_interval_count = models.PositiveIntegerField(default=1)
    nickname = models.CharField(max_length=250, blank=True)
    active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass

    @property
    def type(self) -> str:
        return "recurring" if self.recurring_interval else "one_time"


class Subscription(StripeObject):
    ID_PREFIX = "sub"
    OBJECT = "subscription"

    class Status(models.TextChoices):
        INCOMPLETE = "incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired"
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELED = "canceled"
        UNPAID = "unpaid"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INCOMPLETE)
    currency = models.CharField(max_length=3)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    default_payment_method = models.CharField(max_length=100, blank=True)
    latest_invoice = models.ForeignKey(
        "billing.Invoice", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        indexes = [models.Index(fields=["customer", "status"])]


class SubscriptionItem(StripeObject):
    ID_PREFIX = "si"
    OBJECT = "subscription_item"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="items")
    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)

    class Meta(StripeObject.Meta):
        ordering = ["created"]


class Invoice(StripeObject):
    ID_PREFIX = "in"
    OBJECT = "invoice"

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3)
    subtotal = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_remaining = models.BigIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    description = models.TextField(blank=True)
    due_date = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    payment_intent = models.ForeignKey(
        "billing.PaymentIntent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        indexes = [models.Index(fields=["customer", "status"])]


class InvoiceLine(StripeObject):
    ID_PREFIX = "il"
    OBJECT = "line_item"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    price = models.ForeignKey(
        Price, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    description = models.CharField(max_length=500, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)

    class Meta(StripeObject.Meta):
        ordering = ["created"]


class PaymentIntent(StripeObject):
    ID_PREFIX = "pi"
    OBJECT = "payment_intent"

    class Status(models.TextChoices):
        REQUIRES_PAYMENT_METHOD = "requires_payment_method"
        REQUIRES_CONFIRMATION = "requires_confirmation"
        REQUIRES_ACTION = "requires_action"
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        CANCELED = "canceled"

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="payment_intents"
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.BigIntegerField()
    amount_received = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=30, choices=Status.choices, default=Status.REQUIRES_PAYMENT_METHOD
    )
    payment_method = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    # Stripe's shape: {"type", "code", "decline_code", "message"}.
    last_payment_error = models.JSONField(null=True, blank=True)
    latest_charge = models.ForeignKey(
        "billing.Charge", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class Charge(StripeObject):
    ID_PREFIX = "ch"
    OBJECT = "charge"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        PENDING = "pending"
        FAILED = "failed"

    payment_intent = models.ForeignKey(
        PaymentIntent, null=True, blank=True, on_delete=models.PROTECT, related_name="charges"
    )
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="charges"
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="charges"
    )
    amount = models.BigIntegerField()
    amount_captured = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices)
    paid = models.BooleanField(default=False)
    refunded = models.BooleanField(default=False)
    disputed = models.BooleanField(default=False)
    payment_method = models.CharField(max_length=100, blank=True)
    failure_code = models.CharField(max_length=60, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    outcome = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class Refund(StripeObject):
    ID_PREFIX = "re"
    OBJECT = "refund"

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    class Reason(models.TextChoices):
        DUPLICATE = "duplicate"
        FRAUDULENT = "fraudulent"
        REQUESTED_BY_CUSTOMER = "requested_by_customer"

    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="refunds")
    payment_intent = models.ForeignKey(
        PaymentIntent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    reason = models.CharField(max_length=30, choices=Reason.choices, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class Dispute(StripeObject):
    """A chargeback."""

    ID_PREFIX = "dp"
    OBJECT = "dispute"

    class Status(models.TextChoices):
        WARNING_NEEDS_RESPONSE = "warning_needs_response"
        NEEDS_RESPONSE = "needs_response"
        UNDER_REVIEW = "under_review"
        WON = "won"
        LOST = "lost"

    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="disputes")
    payment_intent = models.ForeignKey(
        PaymentIntent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.NEEDS_RESPONSE)
    reason = models.CharField(max_length=40, default="general")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class CheckoutSession(StripeObject):
    ID_PREFIX = "cs"
    OBJECT = "checkout.session"

    class Mode(models.TextChoices):
        PAYMENT = "payment"
        SUBSCRIPTION = "subscription"

    class Status(models.TextChoices):
        OPEN = "open"
        COMPLETE = "complete"
        EXPIRED = "expired"

    class PaymentStatus(models.TextChoices):
        PAID = "paid"
        UNPAID = "unpaid"
        NO_PAYMENT_REQUIRED = "no_payment_required"

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    mode = models.CharField(max_length=15, choices=Mode.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    payment_status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.UNPAID
    )
    currency = models.CharField(max_length=3)
    amount_total = models.BigIntegerField(default=0)
    # [{"price": "price_…", "quantity": 1}]
    line_items = models.JSONField(default=list)
    success_url = models.URLField(max_length=2000, blank=True)
    cancel_url = models.URLField(max_length=2000, blank=True)
    payment_intent = models.ForeignKey(
        PaymentIntent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(StripeObject.Meta):
        pass


class Event(models.Model):
    """The transactional outbox: written in the same transaction as the change it describes."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    type = models.CharField(max_length=80, db_index=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    # {"object": {...full snapshot...}, "previous_attributes": {...}} (the latter on *.updated)
    data = models.JSONField()
    object_id = models.CharField(max_length=40, db_index=True)
    request_id = models.CharField(max_length=60, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    # Set when a workflow run's action caused this event (recursion detection).
    caused_by_run_id = models.BigIntegerField(null=True, blank=True)
    # The chain of (workflow id, run id) pairs that led to this event, oldest first.
    cause_chain = models.JSONField(default=list, blank=True)
    # Set once the dispatcher has turned this event into runs; a sweep retries the rest.
    dispatched_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["environment", "type", "-created"])]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    def save(self, *args, **kwargs) -> None:
        if not self.id:
            self.id = new_id("evt")
        super().save(*args, **kwargs)


class IdempotencyRecord(models.Model):
    """First result for an idempotency key, per environment (API requests and service calls)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # What the key was used for, and a hash of the parameters: same key + other params = error.
    scope = models.CharField(max_length=120)
    fingerprint = models.CharField(max_length=64)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return self.key


class ApiKey(models.Model):
    """A secret API key for one environment. Only a hash is stored; the key is shown once."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (read only)"
        SUPPORT = "support", "Customer Support"
        ACCOUNT_MANAGER = "account_manager", "Account Manager"
        DEVELOPER = "developer", "Developer"
        ADMIN = "admin", "Admin"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, db_index=True)
    hashed_key = models.CharField(max_length=128, unique=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.DEVELOPER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ProviderFault(models.Model):
    """Makes the simulated provider fail its next N calls in one environment (retry tests).

    A row, not a setting, so every process (web, workers) sees the same switch.
    """

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="+")
    remaining_failures = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.environment}: {self.remaining_failures} failures pending"
