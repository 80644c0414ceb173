"""The builder's URLs, mounted under /admin/workflows/ (before the admin's own URLs)."""

from django.urls import path

from workflows.builder import backtests, views

app_name = "workflows"

urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("create/", views.workflow_create_view, name="create"),
    path("import/", views.workflow_import, name="import"),
    path("<int:workflow_id>/", views.builder, name="builder"),
    path("<int:workflow_id>/export/", views.workflow_export, name="export"),
    path("<int:workflow_id>/duplicate/", views.workflow_duplicate_view, name="duplicate"),
    path("<int:workflow_id>/publish/", views.workflow_publish_view, name="publish"),
    path("<int:workflow_id>/activate/", views.workflow_activate_view, name="activate"),
    path("<int:workflow_id>/deactivate/", views.workflow_deactivate_view, name="deactivate"),
    path("<int:workflow_id>/delete/", views.workflow_delete_view, name="delete"),
    path("<int:workflow_id>/trigger/", views.trigger_edit, name="trigger"),
    path("<int:workflow_id>/guardrails/", views.guardrails_edit, name="guardrails"),
    path("<int:workflow_id>/steps/add/", views.step_add, name="step_add"),
    path("<int:workflow_id>/steps/<str:step_id>/", views.step_edit, name="step"),
    path("<int:workflow_id>/steps/<str:step_id>/move/", views.step_move, name="step_move"),
    path(
        "<int:workflow_id>/steps/<str:step_id>/duplicate/",
        views.step_duplicate,
        name="step_duplicate",
    ),
    path("<int:workflow_id>/steps/<str:step_id>/delete/", views.step_delete, name="step_delete"),
    path("<int:workflow_id>/picker/", views.picker, name="picker"),
    path("<int:workflow_id>/versions/", views.versions, name="versions"),
    path(
        "<int:workflow_id>/versions/<int:number>/restore/",
        views.version_restore,
        name="version_restore",
    ),
    path("<int:workflow_id>/test/", views.workflow_test_view, name="test"),
    path("<int:workflow_id>/run/", views.manual_run, name="run"),
    path("<int:workflow_id>/backtests/", backtests.backtest_start_view, name="backtests"),
    path(
        "<int:workflow_id>/backtests/<int:backtest_id>/",
        backtests.backtest_view,
        name="backtest",
    ),
    path(
        "<int:workflow_id>/backtests/<int:backtest_id>/samples/<str:event_id>/",
        backtests.backtest_sample_view,
        name="backtest_sample",
    ),
]
