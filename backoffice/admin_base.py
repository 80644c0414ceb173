"""Shared pieces for admin pages: role checks through `can()` and environment scoping.

Every admin page of Billflow builds on these, so the role table in `backoffice.roles` is the one
source of "who may see or do what", and no page lists or opens another environment's rows. The
pages whose saves are billing service calls build on `billing.admin_base`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from backoffice.roles import can


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


class ReadOnlyInline(RoleAdminMixin, admin.TabularInline):
    """Child rows shown beside their parent, never edited here (their services do that)."""

    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None):
        return [f.name for f in self.model._meta.fields]


def log_admin_action(request: HttpRequest, obj: Model, message: str) -> None:
    """Django's admin log for an admin action: `ModelAdmin` logs its own forms, not actions,
    so an action logs each object it changed, after the change ("Recent actions" and the
    object's admin history then say who did it; the change is also in history/)."""
    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[obj],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )
