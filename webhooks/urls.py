"""Webhook endpoint pages, mounted under /admin/webhooks/ (before the admin's URLs)."""

from __future__ import annotations

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("create/", views.endpoint_create, name="create"),
    path("<str:endpoint_id>/", views.endpoint_detail, name="detail"),
    path("<str:endpoint_id>/delete/", views.endpoint_delete, name="delete"),
    path(
        "<str:endpoint_id>/deliveries/<int:delivery_id>/resend/",
        views.delivery_resend,
        name="resend",
    ),
]
