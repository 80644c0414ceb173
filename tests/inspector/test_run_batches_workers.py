"""A bulk restart of 5,000 failed runs as a run batch on real qcluster workers, with the cluster
applying it killed midway (PostgreSQL only; tests/workers.py).

5,000 manual runs post to a partner that answers 400 (not retryable), so every run fails at the
post, on the workers. The partner recovers, and an account manager's API key asks for a batch
restarting the failed runs of the workflow (`POST /api/v1/run_batches` with a filter). While the
batch progresses (`GET /api/v1/run_batches/{id}`), the cluster is killed with `kill -9`: the
item in flight rolls back with its run's restart and audit row. A second cluster is started and
the sweep's batch recovery (`batches_resume`, called here in the wait loop as its schedule
would, with a short bound) hands it the batch. Every run is restarted exactly once: restart
count 1, one audit row, one item done, one accepted post per run with its own idempotency key.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tests import factories
from tests.api_client import api_for
from tests.httpserver import Reply
from tests.workers import qclusters, wait_for
from workflows.batches.jobs import batches_resume
from workflows.engine.runs import run_start_manual
from workflows.engine.sweep import sweep
from workflows.models import Run, RunAudit, RunBatch, RunBatchItem

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

RUNS = 5000
KILL_AFTER = 1000


def post_to_partner(url: str) -> dict:
    return {
        "name": "Tell the partner",
        "trigger": {"type": "manual", "input": []},
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": url, "body": {"hello": "partner"}},
            }
        ],
    }


@pytest.mark.timeout(1800)
def test_a_batch_restarts_5000_failed_runs_exactly_once_across_a_killed_worker(
    transactional_db, live, alice, http_server, settings
):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.default = Reply(400, {"error": "partner not ready"})
    workflow = factories.workflow_active(live, post_to_partner(http_server.url("/partner")), alice)
    # A short lease: a run the killed cluster was executing is taken over within seconds.
    env = {"BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1", "BILLFLOW_LEASE_SECONDS": "5"}
    api = api_for(live, role="account_manager")

    with qclusters(count=1, workers=2, env=env) as (first,):
        for _ in range(RUNS):
            run_start_manual(workflow=workflow, input={})
        wait_for(
            lambda: Run.objects.filter(status=Run.Status.FAILED).count() == RUNS,
            timeout=900,
            every=1,
        )
        failed_posts = len(http_server.requests)
        assert failed_posts == RUNS

        http_server.default = Reply(200, {"ok": True})
        response = api.post(
            "/run_batches",
            {"action": "restart", "filter": {"workflow": workflow.pk, "status": "failed"}},
            idempotency_key="restart-the-partner-runs",
        )
        assert response.status_code == 200, response.content
        batch_id = response.json()["id"]
        progress: list[int] = []

        def applied() -> int:
            body = api.get(f"/run_batches/{batch_id}").json()
            progress.append(body["done"])
            return body["done"] >= KILL_AFTER

        wait_for(applied, timeout=600, every=0.2)
        first.kill()  # kill -9 of the whole cluster, mid-batch
        batch = RunBatch.objects.get(pk=batch_id)
        done_at_kill = batch.items.filter(outcome=RunBatchItem.Outcome.DONE).count()
        assert batch.status == RunBatch.Status.RUNNING
        assert KILL_AFTER <= done_at_kill < RUNS, "the batch finished before the kill"

    with qclusters(count=1, workers=2, env=env):

        def finished() -> bool:
            # The sweep, as its schedule would: runs whose lease expired, batches gone quiet.
            sweep()
            batches_resume(stale=timedelta(seconds=3))
            body = api.get(f"/run_batches/{batch_id}").json()
            progress.append(body["done"])
            return body["status"] == "succeeded"

        wait_for(finished, timeout=900, every=1)

        def all_succeeded() -> bool:
            sweep()
            return Run.objects.filter(status=Run.Status.SUCCEEDED).count() == RUNS

        wait_for(all_succeeded, timeout=900, every=1)

    body = api.get(f"/run_batches/{batch_id}").json()
    assert (body["total"], body["done"], body["skipped"], body["failed"]) == (RUNS, RUNS, 0, 0)
    assert body["reasons"] == {}
    # Progress was visible along the way, and never went back.
    assert progress == sorted(progress)
    assert len({p for p in progress if 0 < p < RUNS}) >= 3
    # Exactly once: one restart, one audit row (the batch's key) and one item per run.
    runs = Run.objects.filter(workflow=workflow)
    assert set(runs.values_list("restart_count", flat=True)) == {1}
    audits = RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART)
    assert audits.count() == RUNS
    assert Counter(audits.values_list("run_id", flat=True)).most_common(1)[0][1] == 1
    assert {a.api_key_id for a in audits} == {RunBatch.objects.get(pk=batch_id).api_key_id}
    assert RunBatchItem.objects.filter(batch_id=batch_id, outcome="done").count() == RUNS
    # An accepted post per run after the restart, each with its step's idempotency key; a post
    # the kill cut short (at most one per worker) is sent again with the same key.
    accepted = http_server.requests[failed_posts:]
    keys = Counter(r.headers["idempotency-key"] for r in accepted)
    assert set(keys) == {f"{r.pk}/post/" for r in runs}
    assert sum(keys.values()) - RUNS <= 2
    print(f"\n{done_at_kill} runs restarted before the kill, {RUNS - done_at_kill} after")
