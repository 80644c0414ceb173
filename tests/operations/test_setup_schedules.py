"""`python manage.py setup_schedules`: sweep, stall alert and retention schedules, idempotently."""

from __future__ import annotations

from importlib import import_module
from io import StringIO

from django.core.management import call_command
from django_q.models import Schedule

from workflows.operations.schedules import SCHEDULES


def schedules() -> dict[str, tuple]:
    return {
        s.name: (s.func, s.schedule_type, s.minutes, s.repeats)
        for s in Schedule.objects.filter(name__in=SCHEDULES)
    }


def test_it_installs_the_sweep_the_stall_alert_and_the_retention_prune(db):
    call_command("setup_schedules", stdout=StringIO())

    assert schedules() == {
        "workflows.sweep": ("workflows.tasks.sweep", Schedule.MINUTES, 1, -1),
        "billflow.stall_check": ("workflows.tasks.stall_check", Schedule.MINUTES, 1, -1),
        "billflow.retention": ("workflows.tasks.retention_prune", Schedule.MINUTES, 1, -1),
        "webhooks.sweep": ("webhooks.tasks.sweep", Schedule.MINUTES, 1, -1),
    }


def test_it_changes_nothing_when_run_again(db):
    call_command("setup_schedules", stdout=StringIO())
    before = list(Schedule.objects.order_by("pk").values("pk", "name", "next_run"))
    out = StringIO()

    call_command("setup_schedules", stdout=out)

    assert list(Schedule.objects.order_by("pk").values("pk", "name", "next_run")) == before
    assert out.getvalue().count(": unchanged") == len(SCHEDULES)


def test_it_repairs_an_edited_schedule_and_folds_duplicates(db):
    call_command("setup_schedules", stdout=StringIO())
    Schedule.objects.filter(name="billflow.retention").update(schedule_type=Schedule.DAILY)
    Schedule.objects.create(name="billflow.stall_check", func="x.y", schedule_type="I", minutes=5)
    out = StringIO()

    call_command("setup_schedules", stdout=out)

    assert Schedule.objects.filter(name="billflow.stall_check").count() == 1
    assert schedules()["billflow.retention"][1] == Schedule.MINUTES
    assert schedules()["billflow.stall_check"][0] == "workflows.tasks.stall_check"
    assert "billflow.retention (workflows.tasks.retention_prune): updated" in out.getvalue()


def test_it_points_schedules_of_the_earlier_layout_at_the_queue_entry_points(db):
    # Rows a deploy of the flat `workflows/` layout left behind: a payment-retry schedule and a
    # one-off failure-digest window name functions whose modules have moved.
    Schedule.objects.create(
        name="billflow:payment-retries",
        func="workflows.system.payment_retries_task",
        schedule_type=Schedule.MINUTES,
        minutes=5,
    )
    Schedule.objects.create(
        name="failure-digest:1:2",
        func="workflows.notifications.failure_notifications_deliver",
        args="1",
        schedule_type=Schedule.ONCE,
    )
    out = StringIO()

    call_command("setup_schedules", stdout=out)

    funcs = dict(Schedule.objects.values_list("name", "func"))
    assert funcs["billflow:payment-retries"] == "workflows.tasks.payment_retries"
    assert funcs["failure-digest:1:2"] == "workflows.tasks.failure_notifications_deliver"
    assert "workflows.system.payment_retries_task: 1 schedule(s) moved" in out.getvalue()
    # Every function a schedule names can be imported, so no schedule fails on its next run.
    for func in Schedule.objects.values_list("func", flat=True):
        module, _, name = func.rpartition(".")
        assert hasattr(import_module(module), name), func
