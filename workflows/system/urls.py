"""System workflow settings, mounted under /admin/system-workflows/ (before the admin's URLs)."""

from __future__ import annotations

from django.urls import path

from workflows.system import views

app_name = "system_workflows"

urlpatterns = [
    path("", views.system_list, name="list"),
    path("install/", views.system_install, name="install"),
    path("<slug:system_key>/", views.system_detail, name="detail"),
    path("<slug:system_key>/settings/", views.system_settings_save, name="save"),
]
