"""The run inspector under /admin/runs/ (included before the admin's own URLs)."""

from __future__ import annotations

from django.urls import path

from workflows.inspector import batches, views

app_name = "runs"

urlpatterns = [
    path("", views.runs_list, name="list"),
    path("export.csv", views.runs_export, {"fmt": "csv"}, name="export_csv"),
    path("export.json", views.runs_export, {"fmt": "json"}, name="export_json"),
    path("dashboard/", views.runs_dashboard, name="dashboard"),
    path("notifications/", views.notification_settings, name="notifications"),
    path("notifications/update/", views.notification_update, name="notifications_update"),
    path("bulk-restart/", views.runs_bulk_restart_preview, name="bulk_restart_preview"),
    path("batches/", batches.runs_batch_start, name="batch_start"),
    path("batches/<int:batch_id>/", batches.runs_batch_progress, name="batch"),
    path("<int:run_id>/", views.run_detail, name="detail"),
    path("<int:run_id>/export.json", views.run_export_json, name="export_run"),
    path("<int:run_id>/row/", views.run_row, name="row"),
    path("<int:run_id>/restart/", views.run_restart_preview_view, name="restart_preview"),
    path("<int:run_id>/restart/confirm/", views.run_restart_view, name="restart"),
    path("<int:run_id>/cancel/", views.run_cancel_view, name="cancel"),
    path("<int:run_id>/decide/", views.run_decide_view, name="decide"),
    path("<int:run_id>/resolve/", views.run_resolve_view, name="resolve"),
    path("<int:run_id>/notes/", views.run_note_view, name="note"),
]
