"""A scheduled workflow's slot starts at most one run, even when its task is delivered twice.

django-q passes the slot's time to the task (the schedule's `intended_date_kwarg`); with the
ORM broker a task whose worker died before acknowledging it is delivered again, and the second
delivery must not start the slot again. The clusters' side is in
tests/engine/test_faults_outages.py.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps as django_apps
from django_q.models import Schedule

from tests import factories
from workflows import tasks
from workflows.models import Run
from workflows.services import schedule_name


def weekly(customer_id: str) -> dict:
    return {
        "name": "Every Monday",
        "trigger": {"type": "schedule", "cron": "0 9 * * 1"},
        "steps": [
            {
                "id": "look",
                "type": "action",
                "action": "customers.retrieve",
                "params": {"customer": customer_id},
            }
        ],
    }


def test_the_schedule_hands_its_slot_to_the_task(live, alice):
    workflow = factories.workflow_active(live, weekly(factories.customer(live).pk), alice)

    schedule = Schedule.objects.get(name=schedule_name(workflow.pk))

    assert schedule.func == "workflows.tasks.start_scheduled_run"
    assert schedule.intended_date_kwarg == "slot"


def test_a_schedule_made_before_slots_gets_its_slot_on_migrating(live, alice):
    give_slots = import_module(
        "workflows.migrations.0009_schedule_slot_for_existing_workflows"
    ).give_slots
    workflow = factories.workflow_active(live, weekly(factories.customer(live).pk), alice)
    old = Schedule.objects.filter(name=schedule_name(workflow.pk))
    old.update(intended_date_kwarg=None)  # as activating made it before slots existed
    other = Schedule.objects.create(name="not a workflow", func="workflows.tasks.sweep")

    give_slots(django_apps, None)

    assert old.get().intended_date_kwarg == "slot"
    other.refresh_from_db()
    assert other.intended_date_kwarg is None


def test_a_slot_delivered_twice_starts_one_run(live, alice):
    workflow = factories.workflow_active(live, weekly(factories.customer(live).pk), alice)
    slot = "2026-01-05T09:00:00+00:00"

    first = tasks.start_scheduled_run(workflow.pk, slot=slot)
    again = tasks.start_scheduled_run(workflow.pk, slot=slot)

    assert again == first
    run = Run.objects.get(workflow=workflow)
    assert run.trigger["schedule"]["slot"] == slot
    assert run.trigger["schedule"]["cron"] == "0 9 * * 1"


def test_each_slot_starts_its_own_run(live, alice):
    workflow = factories.workflow_active(live, weekly(factories.customer(live).pk), alice)

    monday = tasks.start_scheduled_run(workflow.pk, slot="2026-01-05T09:00:00+00:00")
    next_monday = tasks.start_scheduled_run(workflow.pk, slot="2026-01-12T09:00:00+00:00")

    assert monday != next_monday
    assert Run.objects.filter(workflow=workflow).count() == 2
