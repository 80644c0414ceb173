"""What a run's lease costs per step: the run row is written only when something changed.

Each step's start and end check the lease in the statement that writes the step's record.
Renewing the lease means a new version of the run row (and of every index on it); checking it
is a row lock. These tests count the statements of real runs, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories
from workflows.actions import registry
from workflows.actions.registry import Action
from workflows.engine.executor import run_execute
from workflows.engine.leases import lease_claim
from workflows.engine.runs import run_cancel, run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.engine.store.steps import Fence, records_write
from workflows.models import Run, StepRun

RUN_WRITE = re.compile(r'UPDATE\s+"?workflows_run"?\s+SET', re.IGNORECASE)
STEP_WRITE = re.compile(r'^(WITH .*)?INSERT INTO "workflows_steprun"', re.IGNORECASE | re.DOTALL)
STEP_RECORDS_READ = re.compile(r'^SELECT .* FROM "workflows_steprun"', re.IGNORECASE)


def _tagging(steps: int) -> dict:
    return {
        "name": "Tag the customer",
        "trigger": {"type": "manual", "input": [{"name": "customer", "type": "string"}]},
        "steps": [
            {
                "id": "has_customer",
                "type": "condition",
                "condition": {"all": [{"field": "trigger.input.customer", "op": "exists"}]},
            },
            *(
                {
                    "id": f"tag_{n}",
                    "type": "action",
                    "action": "customers.update",
                    "params": {
                        "customer": "{{ trigger.input.customer }}",
                        "metadata": {f"tag_{n}": "done"},
                    },
                }
                for n in range(steps)
            ),
        ],
    }


def _statements(queries: CaptureQueriesContext, pattern: re.Pattern) -> list[str]:
    return [q["sql"].strip() for q in queries.captured_queries if pattern.search(q["sql"].strip())]


def test_a_linear_run_writes_its_row_only_to_claim_record_its_path_and_finish(live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(3), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)

    with CaptureQueriesContext(connection) as queries:
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    writes = _statements(queries, RUN_WRITE)
    # The claim; the first step after the condition records its decision in `path` (and
    # renews the lease) as it starts; the finish. The other steps only check the lease.
    assert len(writes) == 3, writes
    assert "path" in writes[1] and "lease_expires_at" in writes[1]
    # Each action step writes its record twice, as it starts and as it ends; the condition's
    # record goes with the first start.
    assert len(_statements(queries, STEP_WRITE)) == 6
    # A run claimed for the first time has no step records to read.
    assert _statements(queries, STEP_RECORDS_READ) == []
    run.refresh_from_db()
    assert run.path == [{"step": "has_customer", "iteration": "", "result": True}]
    customer.refresh_from_db()
    assert customer.metadata == {"tag_0": "done", "tag_1": "done", "tag_2": "done"}


def test_the_lease_is_renewed_once_a_quarter_of_it_has_passed(live, alice, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "LEASE_SECONDS": 1}

    def slow(ctx, params):
        time.sleep(0.3)  # more than a quarter of the one-second lease
        return {"slept": True}

    registry.register(Action(key="tests.slow", label="Slow", execute=slow), replace=True)
    try:
        definition = {
            "name": "Slow steps",
            "trigger": {"type": "manual", "input": []},
            "steps": [
                {"id": f"slow_{n}", "type": "action", "action": "tests.slow", "params": {}}
                for n in range(3)
            ],
        }
        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        with CaptureQueriesContext(connection) as queries:
            assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    finally:
        registry.unregister("tests.slow")

    renewals = [s for s in _statements(queries, RUN_WRITE) if "lease_expires_at" in s]
    # Claim, then slow_0 only checks the lease (just claimed), slow_1 and slow_2 renew it as
    # they start (0.3 s passed each time), then the finish clears the lease.
    assert len(renewals) == 4, renewals


def _record(run: Run, step_id: str, status: str = StepRun.Status.RUNNING) -> StepRun:
    return StepRun(
        run=run, step_id=step_id, status=status, attempts=1, idempotency_key=f"{run.pk}/{step_id}/"
    )


def test_a_fenced_record_is_written_only_by_the_owner_while_the_run_runs(live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(1), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    assert lease_claim(run_id=run.pk, owner="worker-a") is not None

    assert records_write([_record(run, "a")], fence=Fence(run_id=run.pk, owner="worker-a"))
    assert records_write([_record(run, "b")], fence=Fence(run_id=run.pk, owner="worker-b")) is None
    run_cancel(run=Run.objects.get(pk=run.pk))
    # Canceled: no step starts, but the owner may still record the end of the step under way.
    assert records_write([_record(run, "c")], fence=Fence(run_id=run.pk, owner="worker-a")) is None
    ended = _record(run, "a", StepRun.Status.SUCCEEDED)
    under_way = Fence(run_id=run.pk, owner="worker-a", under_way=True)
    assert records_write([ended], fence=under_way)
    not_ours = Fence(run_id=run.pk, owner="worker-b", under_way=True)
    assert records_write([_record(run, "b", StepRun.Status.SUCCEEDED)], fence=not_ours) is None
    stored = {r.step_id: r.status for r in StepRun.objects.filter(run=run)}
    assert stored == {"a": StepRun.Status.SUCCEEDED}


def test_a_fence_that_renews_the_lease_cannot_also_be_the_end_of_a_step_under_way():
    # Renewing belongs to a step's start; the end of a step under way may write on a canceled
    # run, and a start must never do that.
    with pytest.raises(ValueError, match="only its end may be under way"):
        Fence(run_id=1, owner="worker-a", renew=timezone.now(), under_way=True)


def test_a_record_write_updates_the_step_s_existing_record(live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(1), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    first = _record(run, "a")
    first.started_at = timezone.now() - timedelta(minutes=5)
    records_write([first])
    again = _record(run, "a", StepRun.Status.SUCCEEDED)
    again.attempts, again.started_at, again.output = 2, timezone.now(), {"done": True}
    records_write([again])

    [stored] = StepRun.objects.filter(run=run)
    assert stored.pk == first.pk == again.pk
    assert (stored.status, stored.attempts, stored.output) == ("succeeded", 2, {"done": True})
    assert stored.started_at == first.started_at  # an attempt keeps the first start time


def test_a_run_taken_over_reads_its_step_records(live, alice):
    """A second claim must see what the first worker did; here it had done nothing."""
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(1), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    assert lease_claim(run_id=run.pk, owner="dead-worker") is not None
    force_rows(Run.objects.filter(pk=run.pk)).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    with CaptureQueriesContext(connection) as queries:
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    assert len(_statements(queries, STEP_RECORDS_READ)) == 1
    customer.refresh_from_db()
    assert customer.metadata == {"tag_0": "done"}
