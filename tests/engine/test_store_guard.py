"""Runs, step records and deliveries are written only by the engine's store.

The default managers read as usual and refuse every write, naming the store; so do an
instance's `save()` and `delete()`. The store's own operations still write.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests import factories
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_cancel, run_start_manual
from workflows.engine.store.guard import StoreWriteRefused
from workflows.models import Delivery, Run, StepRun

MANUAL = {
    "name": "Guarded",
    "trigger": {"type": "manual", "input": []},
    "steps": [{"id": "yes", "type": "condition", "condition": {"all": []}}],
}


@pytest.fixture
def run(live, alice) -> Run:
    workflow = factories.workflow_active(live, MANUAL, alice)
    return run_start_manual(workflow=workflow, input={}, user=alice)


def _refused(write, operation: str) -> str:
    with pytest.raises(StoreWriteRefused) as refused:
        write()
    message = str(refused.value)
    assert operation in message
    assert "workflows.engine.store" in message
    return message


def test_a_queryset_update_of_runs_outside_the_store_is_refused(run):
    message = _refused(
        lambda: Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED),
        "QuerySet.update()",
    )
    assert message.startswith("Run rows are written only by the engine's store")
    assert Run.objects.get(pk=run.pk).status == Run.Status.PENDING


def test_creating_a_run_outside_the_store_is_refused(run):
    _refused(
        lambda: Run.objects.create(
            environment_id=run.environment_id,
            workflow_id=run.workflow_id,
            version_id=run.version_id,
            trigger_kind=Run.TriggerKind.MANUAL,
        ),
        "QuerySet.create()",
    )
    assert Run.objects.count() == 1


def test_saving_or_deleting_a_run_instance_outside_the_store_is_refused(run):
    run.status = Run.Status.SUCCEEDED
    _refused(run.save, "Run.save()")
    _refused(run.delete, "Run.delete()")
    _refused(lambda: Run.objects.filter(pk=run.pk).delete(), "QuerySet.delete()")
    assert Run.objects.get(pk=run.pk).status == Run.Status.PENDING


def test_step_records_and_deliveries_refuse_writes_too(run):
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    step = StepRun.objects.get(run=run)
    _refused(lambda: StepRun.objects.filter(pk=step.pk).update(attempts=9), "QuerySet.update()")
    _refused(lambda: run.step_runs.update(attempts=9), "QuerySet.update()")
    _refused(step.save, "StepRun.save()")
    _refused(
        lambda: Delivery.objects.create(kind="email", idempotency_key="x"), "QuerySet.create()"
    )
    _refused(
        lambda: Delivery.objects.bulk_create([Delivery(kind="email", idempotency_key="y")]),
        "QuerySet.bulk_create()",
    )
    assert StepRun.objects.get(pk=step.pk).attempts == 1
    assert not Delivery.objects.exists()


def test_reads_and_the_store_s_own_operations_still_work(run, alice):
    assert Run.objects.filter(pk=run.pk, status=Run.Status.PENDING).exists()
    assert Run.objects.filter(pk=run.pk).values_list("status", flat=True).get() == "pending"
    canceled = run_cancel(run=run, user=alice)  # the store's cancel writes the row
    assert canceled.status == Run.Status.CANCELED
    assert canceled.finished_at <= timezone.now()
