"""Create the database cache table that worker heartbeats are shared through.

Every deployment needs it (docs/operations.md); a migration makes sure nobody forgets it.
`createcachetable` skips a table that exists, so running it again is harmless.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("backoffice", "0002_login_throttle")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
