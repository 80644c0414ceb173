"""The retention index: prunable runs (succeeded, canceled, resolved) by when they finished.

The prune takes the oldest of them batch after batch, and /health/ reads the backlog's size and
age, from this index alone. On PostgreSQL it is built CONCURRENTLY: the run table may be large
and the engine keeps writing to it during the deploy.
"""

from django.db import migrations, models


class AddIndexOnline(migrations.AddIndex):
    """AddIndex, built without blocking writes where the database can (PostgreSQL)."""

    def _options(self, schema_editor) -> dict:
        return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, **self._options(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, **self._options(schema_editor))


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("workflows", "0010_run_resolution_notes_batches_attempts")]

    operations = [
        AddIndexOnline(
            model_name="run",
            index=models.Index(
                condition=models.Q(("status__in", ["succeeded", "canceled", "resolved"])),
                fields=["finished_at", "id"],
                name="run_prunable_finished",
            ),
        ),
    ]
