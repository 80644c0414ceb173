"""The run inspector under /admin/runs/ (included before the admin's own URLs)."""

from __future__ import annotations

from django.urls import path

from workflows import views_runs

app_name = "runs"

urlpatterns = [
    path("", views_runs.runs_list, name="list"),
    path("dashboard/", views_runs.runs_dashboard, name="dashboard"),
    path("notifications/", views_runs.notification_settings, name="notifications"),
    path("notifications/update/", views_runs.notification_update, name="notifications_update"),
    path("bulk-restart/", views_runs.runs_bulk_restart_preview, name="bulk_restart_preview"),
    path("bulk-restart/confirm/", views_runs.runs_bulk_restart, name="bulk_restart"),
    path("<int:run_id>/", views_runs.run_detail, name="detail"),
    path("<int:run_id>/row/", views_runs.run_row, name="row"),
    path("<int:run_id>/restart/", views_runs.run_restart_preview_view, name="restart_preview"),
    path("<int:run_id>/restart/confirm/", views_runs.run_restart_view, name="restart"),
    path("<int:run_id>/cancel/", views_runs.run_cancel_view, name="cancel"),
]
