"""Three workers applying one run batch at the same moment (threads, each with its own
PostgreSQL connection): the item rows are locked with SKIP LOCKED and taken only while pending,
so every run is restarted exactly once whoever took it."""

from __future__ import annotations

import pytest

from tests import factories
from tests.concurrency import race
from workflows.batches.jobs import batch_apply, batch_create
from workflows.models import Run, RunAudit, RunBatch, RunBatchItem

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RUNS = 60


def test_three_workers_on_one_batch_restart_each_run_once(flaky):
    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, factories.flaky_definition())
    runs = [
        factories.run_executed(workflow, customer=factories.customer(live)) for _ in range(RUNS)
    ]
    assert {r.status for r in runs} == {Run.Status.FAILED}
    batch = batch_create(
        environment=live, action="restart", filter={"status": "failed"}, user=mona, enqueue=False
    )

    results = race(3, lambda: batch_apply(batch_id=batch.pk, continue_with=None))

    assert not [r for r in results if isinstance(r, Exception)], results
    batch.refresh_from_db()
    assert (batch.status, batch.total, batch.done, batch.skipped, batch.failed) == (
        "succeeded",
        RUNS,
        RUNS,
        0,
        0,
    )
    assert RunBatchItem.objects.filter(batch=batch).count() == RUNS  # resolved once
    assert set(Run.objects.values_list("restart_count", flat=True)) == {1}
    audits = RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART)
    assert sorted(audits.values_list("run_id", flat=True)) == sorted(r.pk for r in runs)
    assert RunBatch.objects.count() == 1
