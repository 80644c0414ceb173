"""`update_where`: the engine's plain-SQL UPDATE adapts values as `save()` would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice.updates import update_where
from tests import factories
from workflows.models import Run, StepRun

MANUAL = {
    "name": "Two retrieves",
    "trigger": {"type": "manual", "input": [{"name": "customer", "type": "string"}]},
    "steps": [
        {
            "id": step_id,
            "type": "action",
            "action": "customers.retrieve",
            "params": {"customer": "{{ trigger.input.customer }}"},
        }
        for step_id in ("a", "b")
    ],
}


@pytest.fixture
def two_step_runs(live) -> tuple[StepRun, StepRun]:
    workflow = factories.workflow_active(live, MANUAL)
    run = Run.objects.create(
        environment=live, workflow=workflow, version=workflow.published_version
    )
    return tuple(
        StepRun.objects.create(run=run, step_id=step_id, idempotency_key=f"{run.pk}/{step_id}/")
        for step_id in ("a", "b")
    )


def test_it_changes_only_the_rows_that_match_every_filter(two_step_runs):
    first, second = two_step_runs
    finished = timezone.now() - timedelta(minutes=1)
    changed = update_where(
        StepRun,
        where={"run": first.run_id, "step_id": "a"},
        status=StepRun.Status.SUCCEEDED,
        output={"amount": 1200, "nested": [1, {"x": None}]},
        error=None,
        finished_at=finished,
    )
    assert changed == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.output, first.error) == (
        "succeeded",
        {"amount": 1200, "nested": [1, {"x": None}]},
        None,
    )
    assert StepRun.objects.filter(pk=first.pk, error__isnull=True).exists()  # not JSON null
    assert first.finished_at == finished
    assert (second.status, second.output, second.finished_at) == ("pending", None, None)


def test_it_reports_no_row_when_a_filter_does_not_match(two_step_runs):
    first, _ = two_step_runs
    assert update_where(StepRun, where={"id": first.pk, "status": "running"}, attempts=3) == 0
    first.refresh_from_db()
    assert first.attempts == 0


def test_it_refuses_an_update_without_a_filter():
    with pytest.raises(ValueError, match="at least one value and one filter"):
        update_where(StepRun, where={}, attempts=1)
