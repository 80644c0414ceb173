"""Every database has the live environment once migrated.

Before, `live` appeared only when someone first opened the back office, so the documented
deploy steps followed by `manage.py create_api_key live` failed on a fresh database. Its system
workflows are installed by the next deploy step, `manage.py system_workflows_install` (it
installs them in every environment; docs/operations.md).
"""

from __future__ import annotations

from django.db import migrations


def create_live(apps, schema_editor) -> None:
    Environment = apps.get_model("billing", "Environment")
    # get_or_create: a database that already has live (made by the back office) keeps it as is.
    Environment.objects.using(schema_editor.connection.alias).get_or_create(
        slug="live", defaults={"name": "Live", "kind": "live"}
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_provider_fault")]

    # Nothing to undo: the live environment may hold data by the time anyone migrates back.
    operations = [migrations.RunPython(create_live, migrations.RunPython.noop)]
