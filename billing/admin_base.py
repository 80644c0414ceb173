"""Admin pages of environment-owned rows whose writes are billing service calls: the form's
save is the service, and a `BillingError` lands on the field it names (`backoffice.admin_base`
holds the role and environment checks they are built on)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from backoffice.admin_base import EnvironmentScopedMixin, RoleAdminMixin, log_admin_action
from billing.errors import BillingError


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
            log_admin_action(request, obj, done)
    if succeeded:
        modeladmin.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)
