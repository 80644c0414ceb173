"""Admin pages of the billing objects. Every write goes through `billing.services`.

Pages list only the current environment's rows (`ScopedModelAdmin`); who may see or change what is
decided by `backoffice.roles.can()`. Fields no service can change are read-only.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.module_loading import import_string

from backoffice.admin_base import EnvironmentRelatedFilter, ReadOnlyInline, log_admin_action
from backoffice.roles import ROLE_BY_KEY_ROLE, can, role_of
from billing import services
from billing.admin_base import ScopedModelAdmin, ServiceModelForm, run_service_action
from billing.api_keys import api_key_create, api_key_revoke
from billing.events import event_envelope
from billing.models import (
    Account,
    ApiKey,
    Charge,
    CheckoutSession,
    Customer,
    Dispute,
    Event,
    Invoice,
    InvoiceLine,
    PaymentIntent,
    Price,
    Product,
    Refund,
    Subscription,
    SubscriptionItem,
)
from billing.money import amounts_of, format_money, format_money_with_minor

ACCOUNT_FILTER = ("account", EnvironmentRelatedFilter)


def pretty_json(value: Any) -> str:
    """JSON for people, escaped (values come from customers and API callers)."""
    return format_html('<pre class="bf-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


def money_column(field: str, *, detail: bool = False):
    """An admin column (or read-only field) showing `field` in the object's currency: "20.00 USD"
    in lists, "20.00 USD (2000)" on detail pages (the stored minor units beside it). It sorts by
    the amount itself."""

    def show(modeladmin: admin.ModelAdmin, obj: models.Model) -> str:
        amount, currency = getattr(obj, field), obj.currency
        if amount is None:
            return "—"
        if detail:
            return format_money_with_minor(amount, currency)
        return format_money(amount, currency) if currency else str(amount)

    show.__name__ = f"{field}_{'detail' if detail else 'money'}"
    label = field.replace("_", " ").capitalize()
    return admin.display(description=label, ordering=field)(show)


def metadata_changes(before: dict, after: dict) -> dict:
    """Stripe merges metadata; a key the form no longer has is removed by sending it as ""."""
    changes = {key: "" for key in before if key not in after}
    changes.update(after)
    return changes


class BillingAdmin(ScopedModelAdmin):
    """Read-only by default; the role capabilities below switch on what a page allows.

    `money_fields` names the amounts (integer minor units of the object's `currency`): each gets
    a list column `<field>_money` ("20.00 USD", sorting by the amount) and, on the detail page,
    takes the place of the raw integer as `<field>_detail` ("20.00 USD (2000)").
    """

    view_capability = "billing.view"
    list_per_page = 50
    show_full_result_count = False  # counting a big table on every page is slow on PostgreSQL
    money_fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for field in cls.money_fields:
            setattr(cls, f"{field}_money", money_column(field))
            setattr(cls, f"{field}_detail", money_column(field, detail=True))

    def money_detail_fields(self, obj: models.Model | None) -> list[str]:
        return [] if obj is None else [f"{field}_detail" for field in self.money_fields]

    def get_fieldsets(self, request: HttpRequest, obj: models.Model | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not self.money_fields:
            return fieldsets
        shown = {field: f"{field}_detail" for field in self.money_fields}
        return [
            (name, {**options, "fields": [shown.get(f, f) for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None):
        return [*super().get_readonly_fields(request, obj), *self.money_detail_fields(obj)]

    def has_support_permission(self, request: HttpRequest) -> bool:
        return can(request.user, "billing.support")

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return can(request.user, "billing.manage")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        # "Why was this invoice voided?": the runs that changed this object or were triggered
        # by an event about it (templates/admin/billing/change_form.html draws them). The
        # engine above billing answers, through a setting, as it receives billing's events.
        runs_touching = import_string(settings.BILLING_ADMIN_RUNS_TOUCHING)
        extra = dict(extra_context or {})
        if self.model is not Event and can(request.user, "runs.view"):
            # The URL holds the admin's escaped id ("cus_5F…" for "cus_…").
            pk = unquote(object_id)
            extra["touching_runs"] = runs_touching(environment=request.environment, object_id=pk)
            extra["touching_object_id"] = pk
        return super().change_view(request, object_id, form_url, extra)


# --- Accounts and customers ---------------------------------------------------------------------


class AccountForm(ServiceModelForm):
    class Meta:
        model = Account
        fields = ["name", "email", "country", "metadata"]

    def call_service(self, data: dict[str, Any]) -> Account:
        return services.account_create(
            environment=self.request.environment,
            name=data["name"],
            email=data.get("email") or "",
            country=(data.get("country") or "").upper(),
            metadata=data.get("metadata") or {},
        )


@admin.register(Account)
class AccountAdmin(BillingAdmin):
    add_capability = "billing.manage"
    form = AccountForm
    list_display = ["id", "name", "email", "country", "created"]
    list_filter = ["country", "created"]
    search_fields = ["id", "name", "email"]

    def get_fields(self, request: HttpRequest, obj: Account | None = None):
        if obj is None:
            return ["name", "email", "country", "metadata"]
        return ["id", "name", "email", "country", "metadata", "created"]

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None):
        return [] if obj is None else ["id", "name", "email", "country", "metadata", "created"]


CUSTOMER_EDITABLE = [
    "email",
    "name",
    "phone",
    "description",
    "address",
    "metadata",
    "default_payment_method",
]


class CustomerForm(ServiceModelForm):
    class Meta:
        model = Customer
        fields = ["account", *CUSTOMER_EDITABLE]
        help_texts = {
            "address": 'JSON, e.g. {"line1": "1 Main St", "city": "Paris", "country": "FR"}',
            "metadata": 'JSON string map; remove a key to delete it, e.g. {"plan": "gold"}',
        }

    def call_service(self, data: dict[str, Any]) -> Customer:
        values = {name: data.get(name) for name in CUSTOMER_EDITABLE if name in self.fields}
        for name in ("email", "name", "phone", "description", "default_payment_method"):
            if name in values and values[name] is None:
                values[name] = ""
        if "metadata" in values:
            values["metadata"] = values["metadata"] or {}
        if self.instance._state.adding:
            return services.customer_create(
                environment=self.request.environment, account=data.get("account"), **values
            )
        changes = {name: values[name] for name in self.changed_data if name in values}
        if "metadata" in changes:
            changes["metadata"] = metadata_changes(self.instance.metadata, changes["metadata"])
        if not changes:
            return self.instance
        return services.customer_update(customer=self.instance, changes=changes)


@admin.register(Customer)
class CustomerAdmin(BillingAdmin):
    add_capability = "billing.manage"
    change_capability = "billing.support"
    form = CustomerForm
    list_display = ["id", "email", "name", "country", "account", "created"]
    list_filter = ["deleted", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "email", "name", "phone"]
    list_select_related = ["account"]
    money_fields = ("balance",)

    @admin.display(description="Country")
    def country(self, obj: Customer) -> str:
        return (obj.address or {}).get("country", "")

    def get_fields(self, request: HttpRequest, obj: Customer | None = None):
        if obj is None:
            return ["account", *CUSTOMER_EDITABLE]
        return ["id", "account", *CUSTOMER_EDITABLE, "currency", "balance", "deleted", "created"]

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None):
        if obj is None:
            return []
        return ["id", "account", "currency", "deleted", "created", *self.money_detail_fields(obj)]


# --- Catalogue ----------------------------------------------------------------------------------


@admin.register(Product)
class ProductAdmin(BillingAdmin):
    list_display = ["id", "name", "active", "account", "created"]
    list_filter = ["active", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "name", "description"]


@admin.register(Price)
class PriceAdmin(BillingAdmin):
    list_display = [
        "id",
        "product",
        "nickname",
        "unit_amount_money",
        "currency",
        "recurring_interval",
        "active",
    ]
    money_fields = ("unit_amount",)
    list_filter = ["active", "currency", "recurring_interval", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "nickname", "product__id", "product__name"]
    list_select_related = ["product"]


# --- Subscriptions and invoices -----------------------------------------------------------------


class SubscriptionItemInline(ReadOnlyInline):
    model = SubscriptionItem
    fields = ["id", "price", "quantity", "created"]


@admin.register(Subscription)
class SubscriptionAdmin(BillingAdmin):
    list_display = ["id", "customer", "status", "currency", "current_period_end", "created"]
    list_filter = ["status", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "customer__id", "customer__email", "customer__name"]
    list_select_related = ["customer"]
    inlines = [SubscriptionItemInline]
    actions = ["cancel_subscriptions"]

    @admin.action(description="Cancel selected subscriptions now", permissions=["manage"])
    def cancel_subscriptions(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda sub: services.subscription_cancel(subscription=sub),
            "Subscriptions canceled",
        )


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["id", "description", "price", "quantity", "amount_detail"]
    amount_detail = money_column("amount", detail=True)

    def get_readonly_fields(self, request: HttpRequest, obj: Invoice | None = None):
        return [*super().get_readonly_fields(request, obj), "amount_detail"]


@admin.register(Invoice)
class InvoiceAdmin(BillingAdmin):
    list_display = ["id", "number", "customer", "status", "total_money", "created"]
    money_fields = ("subtotal", "total", "amount_due", "amount_paid", "amount_remaining")
    list_filter = ["status", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "number", "customer__id", "customer__email", "customer__name"]
    list_select_related = ["customer"]
    inlines = [InvoiceLineInline]
    actions = ["finalize_invoices", "pay_invoices", "void_invoices"]

    @admin.action(description="Finalize selected invoices", permissions=["manage"])
    def finalize_invoices(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda inv: services.invoice_finalize(invoice=inv),
            "Invoices finalized",
        )

    @admin.action(
        description="Pay selected invoices (default payment method)", permissions=["manage"]
    )
    def pay_invoices(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda inv: services.invoice_pay(invoice=inv),
            "Invoices attempted",
        )

    @admin.action(description="Void selected invoices", permissions=["manage"])
    def void_invoices(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda inv: services.invoice_void(invoice=inv),
            "Invoices voided",
        )


# --- Payments -----------------------------------------------------------------------------------


@admin.register(PaymentIntent)
class PaymentIntentAdmin(BillingAdmin):
    list_display = ["id", "customer", "amount_money", "status", "created"]
    money_fields = ("amount", "amount_received")
    list_filter = ["status", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "description", "customer__id", "customer__email", "customer__name"]
    list_select_related = ["customer"]
    actions = ["cancel_payment_intents"]

    @admin.action(description="Cancel selected payment intents", permissions=["manage"])
    def cancel_payment_intents(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda pi: services.payment_intent_cancel(payment_intent=pi),
            "Payment intents canceled",
        )


@admin.register(Charge)
class ChargeAdmin(BillingAdmin):
    list_display = [
        "id",
        "customer",
        "amount_money",
        "amount_refunded_money",
        "status",
        "disputed",
        "created",
    ]
    money_fields = ("amount", "amount_captured", "amount_refunded")
    list_filter = ["status", "refunded", "disputed", "currency", ACCOUNT_FILTER, "created"]
    search_fields = [
        "id",
        "payment_intent__id",
        "customer__id",
        "customer__email",
        "customer__name",
    ]
    list_select_related = ["customer"]
    actions = ["refund_charges"]

    @admin.action(description="Refund selected charges in full", permissions=["support"])
    def refund_charges(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda charge: services.refund_create(
                charge=charge, reason=Refund.Reason.REQUESTED_BY_CUSTOMER
            ),
            "Charges refunded",
        )


@admin.register(Refund)
class RefundAdmin(BillingAdmin):
    list_display = ["id", "charge", "amount_money", "status", "reason", "created"]
    money_fields = ("amount",)
    list_filter = ["status", "reason", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "charge__id", "charge__customer__email"]


@admin.register(Dispute)
class DisputeAdmin(BillingAdmin):
    list_display = ["id", "charge", "amount_money", "status", "reason", "created"]
    money_fields = ("amount",)
    list_filter = ["status", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "charge__id", "charge__customer__email", "reason"]


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(BillingAdmin):
    list_display = [
        "id",
        "customer",
        "mode",
        "status",
        "payment_status",
        "amount_total_money",
    ]
    money_fields = ("amount_total",)
    list_filter = ["status", "payment_status", "mode", "currency", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "customer__id", "customer__email"]
    list_select_related = ["customer"]
    actions = ["expire_sessions"]
    # Django 6 changes the default scheme; say which one we mean.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description="Expire selected checkout sessions", permissions=["manage"])
    def expire_sessions(self, request: HttpRequest, queryset) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda session: services.checkout_session_expire(session=session),
            "Checkout sessions expired",
        )


# --- Event log ----------------------------------------------------------------------------------


@admin.register(Event)
class EventAdmin(BillingAdmin):
    """The outbox, read-only: events are facts, only services append them."""

    list_display = ["id", "type", "object_id", "account", "created"]
    list_filter = ["type", ACCOUNT_FILTER, "created"]
    search_fields = ["id", "type", "object_id", "request_id", "idempotency_key"]
    list_select_related = ["account"]
    fields = [
        "id",
        "type",
        "created",
        "account",
        "object_id",
        "request_id",
        "idempotency_key",
        "caused_by_run_id",
        "dispatched_at",
        "amounts",
        "payload",
    ]
    readonly_fields = fields

    @admin.display(description="Amounts")
    def amounts(self, obj: Event) -> str:
        """The object's amounts as money, above the raw payload (which keeps minor units)."""
        shown = amounts_of((obj.data or {}).get("object") or {})
        return ", ".join(f"{name}: {text}" for name, text in shown) or "—"

    @admin.display(description="Payload")
    def payload(self, obj: Event) -> str:
        return pretty_json(event_envelope(obj))


# --- API keys -----------------------------------------------------------------------------------


class ApiKeyForm(ServiceModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Nobody mints a key more powerful than themselves.
        if "role" not in self.fields:
            return
        mine = role_of(self.request.user)
        self.fields["role"].choices = [
            (value, label)
            for value, label in ApiKey.Role.choices
            if ROLE_BY_KEY_ROLE[value] <= mine
        ]

    def call_service(self, data: dict[str, Any]) -> ApiKey:
        try:
            key, raw = api_key_create(
                environment=self.request.environment,
                name=data["name"],
                role=data["role"],
                created_by=self.request.user,
            )
        except PermissionDenied as exc:
            self.add_error("role", str(exc))
            return self.instance
        # Shown once on the page that answers this request, never stored.
        self.request.billflow_raw_api_key = raw
        return key


@admin.register(ApiKey)
class ApiKeyAdmin(ScopedModelAdmin):
    view_capability = "api_keys.manage"
    add_capability = "api_keys.manage"
    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "role",
        "environment",
        "created_by",
        "last_used",
        "revoked_at",
    ]
    list_filter = ["role", "revoked_at", "last_used"]
    search_fields = ["name", "prefix"]
    list_select_related = ["environment", "created_by"]
    actions = ["revoke_keys"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        if obj is None:
            return ["name", "role"]
        return [
            "name",
            "prefix",
            "role",
            "environment",
            "created_by",
            "created",
            "last_used",
            "revoked_at",
        ]

    def has_manage_keys_permission(self, request: HttpRequest) -> bool:
        return can(request.user, "api_keys.manage")

    @admin.action(description="Revoke selected API keys", permissions=["manage_keys"])
    def revoke_keys(self, request: HttpRequest, queryset) -> None:
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=key)
            log_admin_action(request, key, "Revoked")
            count += 1
        self.message_user(request, f"API keys revoked: {count}.", messages.SUCCESS)

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue=None
    ) -> HttpResponse:
        raw = getattr(request, "billflow_raw_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        # A page, not a message: messages travel in cookies and would keep the secret around.
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.model._meta,
            "api_key": obj,
            "raw_key": raw,
        }
        response = TemplateResponse(request, "admin/billing/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response
