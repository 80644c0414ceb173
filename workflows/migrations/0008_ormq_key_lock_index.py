"""An index for the ORM broker's claim query (`key = … AND lock < now`).

django-q2 ships none; with a backlog every claim would scan the whole
queue table. The table belongs to django_q, so the index is plain SQL here.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("workflows", "0007_run_audit_api_key"),
    ]

    operations = [
        migrations.RunSQL(
            'CREATE INDEX IF NOT EXISTS billflow_ormq_key_lock ON django_q_ormq ("key", "lock")',
            reverse_sql="DROP INDEX IF EXISTS billflow_ormq_key_lock",
        )
    ]
