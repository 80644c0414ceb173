"""What a run's lease costs per step: the run row is written only when something changed.

The executor checks its lease at the start of every step's transaction. Renewing it means a
new version of the run row (and of every index on it); holding it is a row lock. These tests
count the statements of real runs, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories
from workflows.actions import registry
from workflows.actions.registry import Action
from workflows.engine.executor import run_execute
from workflows.engine.leases import lease_claim, lease_hold
from workflows.models import Run
from workflows.runs import run_cancel, run_start_manual

RUN_WRITE = re.compile(r'^UPDATE "?workflows_run"?', re.IGNORECASE)
RUN_HOLD = re.compile(r"^SELECT 1 FROM workflows_run WHERE", re.IGNORECASE)
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
    return [q["sql"].strip() for q in queries.captured_queries if pattern.match(q["sql"].strip())]


def test_a_linear_run_writes_its_row_only_to_claim_record_its_path_and_finish(live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(3), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)

    with CaptureQueriesContext(connection) as queries:
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    writes = _statements(queries, RUN_WRITE)
    # The claim; the first step after the condition records its decision in `path` (and
    # renews the lease); the finish. The other two steps only hold the lease.
    assert len(writes) == 3, writes
    assert "path" in writes[1] and "lease_expires_at" in writes[1]
    assert len(_statements(queries, RUN_HOLD)) == 2
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
    # Claim, then slow_0 holds (just claimed), slow_1 and slow_2 renew (0.3 s passed each
    # time), then the finish clears the lease.
    assert len(renewals) == 4, renewals
    assert len(_statements(queries, RUN_HOLD)) == 1


def test_a_held_lease_is_only_the_owner_s_while_the_run_runs(live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(1), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    assert lease_claim(run_id=run.pk, owner="worker-a") is not None

    with transaction.atomic():
        assert lease_hold(run_id=run.pk, owner="worker-a")
        assert not lease_hold(run_id=run.pk, owner="worker-b")
    run_cancel(run=Run.objects.get(pk=run.pk))
    with transaction.atomic():
        assert not lease_hold(run_id=run.pk, owner="worker-a")


def test_a_run_taken_over_reads_its_step_records(live, alice):
    """A second claim must see what the first worker did; here it had done nothing."""
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, _tagging(1), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    assert lease_claim(run_id=run.pk, owner="dead-worker") is not None
    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    with CaptureQueriesContext(connection) as queries:
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    assert len(_statements(queries, STEP_RECORDS_READ)) == 1
    customer.refresh_from_db()
    assert customer.metadata == {"tag_0": "done"}
