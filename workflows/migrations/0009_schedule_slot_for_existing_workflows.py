"""Schedules of workflows activated before slots existed get them too.

A workflow's django-q schedule now passes the slot's time to `start_scheduled_run`
(`intended_date_kwarg="slot"`), so a task delivered again cannot start the slot twice. Schedules
made earlier lacked it until their workflow was published or activated again; this gives it to
them now.
"""

from django.db import migrations

SCHEDULE_FUNC = "workflows.tasks.start_scheduled_run"


def give_slots(apps, schema_editor) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    without_slot = Schedule.objects.filter(func=SCHEDULE_FUNC).exclude(intended_date_kwarg="slot")
    without_slot.update(intended_date_kwarg="slot")


class Migration(migrations.Migration):
    dependencies = [
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("workflows", "0008_ormq_key_lock_index"),
    ]

    operations = [migrations.RunPython(give_slots, migrations.RunPython.noop)]
