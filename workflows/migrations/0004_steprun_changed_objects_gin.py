"""A GIN index on StepRun.changed_objects, so "runs that touched cus_…" stays fast (PostgreSQL).

SQLite has no GIN; there the inspector falls back to a text search, which is fine at its scale.
"""

from __future__ import annotations

from django.db import migrations

INDEX = "workflows_steprun_changed_objects_gin"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON workflows_steprun "
            "USING gin (changed_objects jsonb_path_ops)"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("workflows", "0003_inspector_audit_notifications")]

    operations = [migrations.RunPython(create, drop)]
