"""Run transitions: manual and scheduled starts, restart from the failed step, cancel."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import TestCase

from billing.errors import InvalidRequestError
from billing.models import Event
from tests import factories
from workflows import tasks
from workflows.engine.executor import run_execute
from workflows.engine.runs import (
    run_cancel,
    run_restart,
    run_restart_bulk,
    run_restart_preview,
    run_start_manual,
)
from workflows.models import Run, StepRun
from workflows.services import WorkflowStateError

MANUAL = {
    "name": "Credit review",
    "trigger": {
        "type": "manual",
        "input": [
            {"name": "customer", "type": "string", "required": True},
            {"name": "amount", "type": "integer", "required": False},
        ],
    },
    "steps": [
        {
            "id": "flag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.input.customer }}",
                "metadata": {"review": "requested"},
            },
        },
        {
            "id": "tell",
            "type": "action",
            "action": "team.email",
            "params": {
                "recipients": ["{{ trigger.input.reviewer }}"],
                "subject": "Review {{ trigger.input.customer }}",
                "body": "Please review.",
            },
        },
    ],
}


def simple_manual() -> dict:
    return {**MANUAL, "steps": MANUAL["steps"][:1]}


def test_it_starts_a_manual_run_with_its_input_and_starter(live, alice, mona):
    workflow = factories.workflow_active(live, simple_manual(), alice)
    customer = factories.customer(live)

    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=mona)

    assert run.status == Run.Status.PENDING
    assert run.trigger_kind == Run.TriggerKind.MANUAL
    assert run.trigger == {"input": {"customer": customer.pk}}
    assert run.started_by == mona
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Input field 'customer' is required."),
        ({"customer": 12}, "Input field 'customer' must be a string, not integer."),
        ({"customer": "cus_1", "amount": "ten"}, "Input field 'amount' must be an integer, not"),
        ({"customer": "cus_1", "colour": "red"}, "Input field 'colour' is not declared"),
        (["cus_1"], "Input must be a JSON object."),
    ],
)
def test_it_rejects_manual_input_naming_the_field(live, alice, data, message):
    workflow = factories.workflow_active(live, simple_manual(), alice)
    with pytest.raises(InvalidRequestError) as error:
        run_start_manual(workflow=workflow, input=data, user=alice)
    assert message in error.value.message
    assert Run.objects.count() == 0


def test_it_refuses_to_start_an_event_workflow_by_hand(live, alice):
    definition = {
        "name": "Event one",
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "flag",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {"a": "b"}},
            }
        ],
    }
    workflow = factories.workflow_active(live, definition, alice)
    with pytest.raises(WorkflowStateError, match="event trigger, not a manual trigger"):
        run_start_manual(workflow=workflow, input={}, user=alice)


def test_the_schedule_task_starts_a_run_of_an_active_scheduled_workflow(live, alice):
    customer = factories.customer(live)
    definition = {
        "name": "Every Monday",
        "trigger": {"type": "schedule", "cron": "0 9 * * 1"},
        "steps": [
            {
                "id": "look",
                "type": "action",
                "action": "customers.retrieve",
                "params": {"customer": customer.pk},
            }
        ],
    }
    workflow = factories.workflow_active(live, definition, alice)
    run_id = tasks.start_scheduled_run(workflow.pk)
    run = Run.objects.get(pk=run_id)
    assert run.trigger_kind == Run.TriggerKind.SCHEDULE
    assert run.trigger["schedule"]["cron"] == "0 9 * * 1"


def test_it_restarts_at_the_failed_step_without_repeating_earlier_steps(live, alice, mona):
    definition = {
        **MANUAL,
        "trigger": {
            "type": "manual",
            "input": [
                {"name": "customer", "type": "string", "required": True},
                {"name": "reviewer", "type": "string", "required": True},
            ],
        },
    }
    workflow = factories.workflow_active(live, definition, alice)
    customer = factories.customer(live)
    run = run_start_manual(
        workflow=workflow, input={"customer": customer.pk, "reviewer": "pat"}, user=mona
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert run_execute(run_id=run.pk) == Run.Status.FAILED
    run.refresh_from_db()
    assert run.error["step"] == "tell"
    assert "pat" in run.error["message"]

    preview = {p["step_id"]: p for p in run_restart_preview(run=run)}
    assert preview["flag"]["will_run"] == "no"
    assert preview["tell"]["will_run"] == "yes"
    assert preview["tell"]["side_effects"] is True

    factories.user("pat", "Account Manager")  # the cause is fixed: pat joins the team
    run = run_restart(run=run, user=mona)
    assert run.status == Run.Status.PENDING
    assert run.restart_count == 1
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert steps["flag"].attempts == 1
    assert steps["tell"].status == StepRun.Status.SUCCEEDED
    assert len(steps["tell"].attempt_errors) == 1
    assert Event.objects.filter(type="customer.updated", object_id=customer.pk).count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["pat@example.com"]
    assert mail.outbox[0].subject == f"Review {customer.pk}"


def test_it_restarts_only_failed_runs(live, alice):
    workflow = factories.workflow_active(live, simple_manual(), alice)
    customer = factories.customer(live)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    with pytest.raises(WorkflowStateError, match="only failed runs restart"):
        run_restart(run=run)
    restarted, skipped = run_restart_bulk(runs=[run])
    assert restarted == []
    assert skipped[0][0] == run


def test_it_cancels_pending_runs_and_not_finished_ones(live, alice, mona):
    workflow = factories.workflow_active(live, simple_manual(), alice)
    customer = factories.customer(live)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)

    run = run_cancel(run=run, user=mona)
    assert run.status == Run.Status.CANCELED
    assert run.stop_reason == "Canceled by mona."
    assert run_execute(run_id=run.pk) == "not_claimed"
    with pytest.raises(WorkflowStateError, match="only pending, running or waiting runs can be"):
        run_cancel(run=run, user=mona)
