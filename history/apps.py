from django.apps import AppConfig


class HistoryConfig(AppConfig):
    name = "history"
    verbose_name = "History"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from backoffice.actors import install_on_connection
        from history.retention import run_events_delete
        from workflows.operations.retention import runs_pruned

        # Every PostgreSQL connection hands the current actor to the triggers (backoffice.actors).
        connection_created.connect(install_on_connection, dispatch_uid="backoffice.actors")
        runs_pruned.connect(run_events_delete, dispatch_uid="history.run_events")
