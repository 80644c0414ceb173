"""Shared pieces for admin pages: role checks through `can()` and environment scoping.

Every admin page of Billflow builds on these, so the role table in `backoffice.roles` is the one
source of "who may see or do what", and no page lists or opens another environment's rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from backoffice.roles import can
from billing.errors import BillingError


class RoleAdminMixin:
    """Maps the admin's four permissions to capabilities; `None` means nobody, in any role."""

    view_capability: str = "billing.view"
    add_capability: str | None = None
    change_capability: str | None = None
    delete_capability: str | None = None

    def _can(self, request: HttpRequest, capability: str | None) -> bool:
        return capability is not None and can(request.user, capability)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._can(request, self.view_capability)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can(request, self.view_capability)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._can(request, self.add_capability)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can(request, self.change_capability)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can(request, self.delete_capability)


class EnvironmentScopedMixin:
    """Lists and opens only rows of `request.environment`; another environment's row is a 404."""

    environment_field = "environment"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        return qs.filter(**{self.environment_field: request.environment})

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # The admin would redirect with "does not exist"; a 404 tells nothing about other
            # environments and is what the rest of the back office answers.
            raise Http404("No such object in this environment.")
        return obj

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        related = db_field.related_model
        if field is not None and any(f.name == "environment" for f in related._meta.fields):
            field.queryset = field.queryset.filter(environment=request.environment)
        return field


class EnvironmentRelatedFilter(admin.RelatedFieldListFilter):
    """A related-object filter (e.g. by account) that offers only this environment's rows."""

    def field_choices(self, field, request: HttpRequest, model_admin: admin.ModelAdmin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(
            include_blank=False,
            ordering=ordering,
            limit_choices_to={"environment": request.environment},
        )


class ScopedModelAdmin(RoleAdminMixin, EnvironmentScopedMixin, admin.ModelAdmin):
    """The base for admin pages of environment-owned rows (billing objects, workflows, runs)."""

    def get_form(self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kw):
        form = super().get_form(request, obj, change=change, **kw)
        if issubclass(form, ServiceModelForm):
            # A per-request subclass: the form's service call needs the environment and the user.
            form = type(form.__name__, (form,), {"request": request})
        return form

    def save_model(self, request: HttpRequest, obj: Model, form, change: bool) -> None:
        if isinstance(form, ServiceModelForm):
            return  # The form's service call already wrote the row (and its events).
        super().save_model(request, obj, form, change)


class ReadOnlyInline(RoleAdminMixin, admin.TabularInline):
    """Child rows shown beside their parent, never edited here (their services do that)."""

    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None):
        return [f.name for f in self.model._meta.fields]


class ServiceModelForm(forms.ModelForm):
    """A ModelForm whose save is a billing service call, made while the form is validated.

    Doing the write during validation lets a `BillingError` land on the form, naming the field,
    with nothing written (the service's transaction rolled back). Subclasses implement
    `call_service(cleaned_data) -> instance`; `self.request` is set by `ScopedModelAdmin`.
    """

    request: HttpRequest

    def call_service(self, data: dict[str, Any]) -> Model:
        raise NotImplementedError

    def _post_clean(self) -> None:
        # Model validation and construction are the service's job (it is the one writer).
        if self.errors:
            return
        try:
            self.instance = self.call_service(self.cleaned_data)
        except BillingError as exc:
            add_billing_error(self, exc)


def add_billing_error(form: forms.Form, exc: BillingError) -> None:
    """Shows `exc` on the field it names (`metadata[plan]` -> `metadata`), else on the form."""
    # `invoice_settings[default_payment_method]` -> the form's `default_payment_method`.
    parts = re.findall(r"[^\[\].]+", exc.param or "")
    field = next((part for part in parts if part in form.fields), None)
    if field is not None:
        form.add_error(field, exc.message)
    else:
        prefix = f"{exc.param}: " if exc.param else ""
        form.add_error(None, prefix + exc.message)


def run_service_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    service: Callable[[Model], object],
    done: str,
) -> None:
    """Calls `service` for each selected row, each in its own transaction, and reports per row."""
    succeeded = 0
    for obj in queryset:
        try:
            service(obj)
        except BillingError as exc:
            where = f" ({exc.param})" if exc.param else ""
            modeladmin.message_user(request, f"{obj}: {exc.message}{where}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)
