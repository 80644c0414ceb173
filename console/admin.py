"""The admin site's titles and its environments page (sandboxes are made with the system
workflows installed, like every environment)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from backoffice.admin_base import RoleAdminMixin
from billing.models import Environment
from console.environments import sandbox_create

admin.site.site_header = "Billflow back office"
admin.site.site_title = "Billflow"
admin.site.index_title = "Billing, workflows and runs"
admin.site.site_url = None  # "/" only redirects back here


class SandboxForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = ["name", "slug"]
        help_texts = {"slug": "Used in API keys (sk_<slug>_…) and URLs; cannot change later."}


@admin.register(Environment)
class EnvironmentAdmin(RoleAdminMixin, admin.ModelAdmin):
    # Everyone with a role sees the environments (the switcher lists them anyway).
    view_capability = "billing.view"
    add_capability = "environments.manage"
    change_capability = "environments.manage"
    list_display = ["name", "slug", "kind", "created"]
    list_filter = ["kind"]
    search_fields = ["name", "slug"]
    form = SandboxForm

    def get_readonly_fields(self, request: HttpRequest, obj: Environment | None = None):
        # Slug and kind are part of every key and id that refers to the environment.
        return ["slug", "kind", "created"] if obj is not None else ["kind"]

    def get_fields(self, request: HttpRequest, obj: Environment | None = None):
        return ["name", "slug", "kind", "created"] if obj is not None else ["name", "slug", "kind"]

    def save_model(self, request: HttpRequest, obj: Environment, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # Only sandboxes are made here: there is exactly one live environment.
        created = sandbox_create(name=form.cleaned_data["name"], slug=form.cleaned_data["slug"])
        obj.pk, obj.kind, obj.created = created.pk, created.kind, created.created
