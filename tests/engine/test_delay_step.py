"""The delay step on one database (SQLite or PostgreSQL): its validation, the walk through the
executor (waiting, resuming when due, an `until` in the past, cancel while waiting), the
builder's test run (records what it would wait for and goes on), the inspector and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Customer
from tests import factories
from tests.engine.test_engine_executor import committed
from workflows.api import run_json
from workflows.builder.test_run import workflow_test_run
from workflows.definition.model import parse
from workflows.definition.validation import validate_definition
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_cancel, run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.engine.sweep import sweep
from workflows.models import Run, StepRun
from workflows.operations.retention import PRUNABLE


def dunning(delay: dict) -> dict:
    """Mark the customer, wait, mark again: the steps after the delay see its output."""
    return {
        "name": "Dunning",
        "trigger": {
            "type": "manual",
            "input": [{"name": "customer", "type": "string", "required": True}],
        },
        "steps": [
            {
                "id": "first",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"first": "yes"},
                },
            },
            {"id": "wait", "type": "delay", **delay},
            {
                "id": "second",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"second": "{{ steps.wait.output.resume_at }}"},
                },
            },
        ],
    }


def errors_of(delay: dict) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in validate_definition(dunning(delay))]


# --- validation -------------------------------------------------------------------------------


def test_a_delay_step_round_trips_through_the_typed_definition():
    for delay in ({"seconds": 30}, {"until": "2026-12-24T09:00:00Z"}):
        definition = dunning(delay)
        assert parse(definition).to_json() == definition
        assert validate_definition(definition) == []


def test_a_template_until_is_checked_like_any_reference():
    assert errors_of({"until": "{{ trigger.input.customer }}"}) == []
    field, message = errors_of({"until": "{{ steps.nowhere.output.at }}"})[0]
    assert field == "steps[1].until"
    assert "nowhere" in message


@pytest.mark.parametrize("seconds", [0, -5])
def test_seconds_must_be_a_positive_whole_number(seconds):
    assert errors_of({"seconds": seconds}) == [
        ("steps[1].seconds", "Must be a positive whole number")
    ]


@pytest.mark.parametrize("seconds", [366 * 24 * 3600 + 1, 10**30])
def test_seconds_past_366_days_are_refused_naming_the_field(seconds):
    assert errors_of({"seconds": seconds}) == [
        ("steps[1].seconds", "Must be at most 31,622,400 (366 days); wait longer with `until`")
    ]
    assert errors_of({"seconds": 366 * 24 * 3600}) == []


def test_seconds_of_the_wrong_type_name_the_field():
    (field, _message), *_ = errors_of({"seconds": "30"})
    assert field == "steps[1].seconds"


def test_until_must_be_an_iso_timestamp_or_a_template():
    field, message = errors_of({"until": "next tuesday"})[0]
    assert field == "steps[1].until"
    assert "ISO timestamp" in message


def test_a_delay_takes_exactly_one_of_seconds_and_until():
    for delay in ({}, {"seconds": 5, "until": "2026-12-24T09:00:00Z"}):
        field, message = errors_of(delay)[0]
        assert field == "steps[1]"
        assert "exactly one" in message


# --- the executor -----------------------------------------------------------------------------


def start(live, alice, delay: dict) -> tuple[Run, Customer]:
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, dunning(delay), alice)
    with committed():
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    return run, customer


def test_a_run_waits_holding_no_lease_and_resumes_when_due(live, alice, client, mona):
    run, customer = start(live, alice, {"seconds": 3600})
    before = timezone.now()
    assert run_execute(run_id=run.pk) == Run.Status.WAITING
    run.refresh_from_db()
    assert (run.lease_owner, run.lease_expires_at) == ("", None)
    assert (
        before + timedelta(seconds=3599)
        < run.next_attempt_at
        <= timezone.now() + timedelta(seconds=3600)
    )
    wait = StepRun.objects.get(run=run, step_id="wait")
    assert wait.status == StepRun.Status.PENDING
    assert wait.next_attempt_at == run.next_attempt_at
    assert wait.output["waiting_for"] == "delay"
    assert not StepRun.objects.filter(run=run, step_id="second").exists()
    assert Run.Status.WAITING not in PRUNABLE

    # Not due: neither a worker nor the sweep takes it.
    assert run_execute(run_id=run.pk) == "not_claimed"
    assert sweep()["runs"] == 0

    # The inspector and the API say what it waits for and until when.
    client.force_login(mona)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert f"waiting until {run.next_attempt_at.isoformat()}, delay step wait" in page
    assert 'id="run-resume-at"' in page
    assert 'id="cancel-button"' in page
    body = run_json(run)
    assert body["status"] == "waiting"
    assert body["waiting"] == {
        "for": "delay",
        "step": "wait",
        "resume_at": int(run.next_attempt_at.timestamp()),
        "reason": f"waiting until {run.next_attempt_at.isoformat()}, delay step wait",
    }

    # Due (an hour passed: both the run and the step record say so): the sweep enqueues it
    # and the run resumes after the delay, the steps before it not again.
    due = timezone.now() - timedelta(seconds=1)
    force_rows(Run.objects.filter(pk=run.pk)).update(next_attempt_at=due)
    force_rows(StepRun.objects.filter(pk=wait.pk)).update(
        next_attempt_at=due, output={"waiting_for": "delay", "resume_at": due.isoformat()}
    )
    assert sweep()["runs"] == 1
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert steps["first"].attempts == 1
    assert steps["wait"].status == StepRun.Status.SUCCEEDED
    assert steps["second"].attempts == 1
    customer.refresh_from_db()
    assert customer.metadata["second"] == steps["wait"].output["resume_at"]


def test_waking_from_a_delay_is_not_held_to_the_attempt_limit(live, alice, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "STEP_MAX_ATTEMPTS": 1}
    run, customer = start(live, alice, {"seconds": 3600})
    assert run_execute(run_id=run.pk) == Run.Status.WAITING
    wait = StepRun.objects.get(run=run, step_id="wait")
    due = timezone.now() - timedelta(seconds=1)
    force_rows(Run.objects.filter(pk=run.pk)).update(next_attempt_at=due)
    force_rows(StepRun.objects.filter(pk=wait.pk)).update(
        next_attempt_at=due, output={"waiting_for": "delay", "resume_at": due.isoformat()}
    )

    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    wait.refresh_from_db()
    assert (wait.status, wait.attempts) == (StepRun.Status.SUCCEEDED, 2)


def test_an_until_in_the_past_resumes_at_once(live, alice):
    run, customer = start(live, alice, {"until": "2020-01-01T00:00:00Z"})
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    customer.refresh_from_db()
    assert customer.metadata["second"] == "2020-01-01T00:00:00+00:00"


def test_an_until_that_resolves_to_no_timestamp_fails_the_step(live, alice):
    run, _customer = start(live, alice, {"until": "{{ trigger.input.customer }}"})
    assert run_execute(run_id=run.pk) == Run.Status.FAILED
    run.refresh_from_db()
    assert run.error["step"] == "wait"
    assert run.error["type"] == "delay_until"


def test_a_waiting_run_can_be_canceled_and_is_never_resumed(live, alice):
    run, customer = start(live, alice, {"seconds": 3600})
    run_execute(run_id=run.pk)
    run_cancel(run=run, user=alice)
    assert run.status == Run.Status.CANCELED
    force_rows(Run.objects.filter(pk=run.pk)).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert sweep()["runs"] == 0
    assert run_execute(run_id=run.pk) == "not_claimed"
    assert not StepRun.objects.filter(run=run, step_id="second").exists()
    wait = StepRun.objects.get(run=run, step_id="wait")
    assert (wait.status, wait.next_attempt_at) == (StepRun.Status.CANCELED, None)
    customer.refresh_from_db()
    assert "second" not in customer.metadata


# --- the builder's test run -------------------------------------------------------------------


def test_the_test_run_records_what_it_would_wait_for_and_goes_on(live):
    customer = factories.customer(live)
    result = workflow_test_run(
        workflow_id=None,
        definition=dunning({"seconds": 259200}),
        trigger={"input": {"customer": customer.pk}},
        environment=live,
    )
    assert result.status == "succeeded"
    assert "would wait 259200 s" in result.steps["wait"]["note"]
    assert "goes on at once" in result.steps["wait"]["note"]
    assert result.steps["second"]["status"] == "simulated"
