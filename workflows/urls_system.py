"""System workflow settings, mounted under /admin/system-workflows/ (before the admin's URLs)."""

from __future__ import annotations

from django.urls import path

from workflows import views_system

app_name = "system_workflows"

urlpatterns = [
    path("", views_system.system_list, name="list"),
    path("install/", views_system.system_install, name="install"),
    path("<slug:system_key>/", views_system.system_detail, name="detail"),
    path("<slug:system_key>/settings/", views_system.system_settings_save, name="save"),
]
