"""Bulk restart of 500 failed runs from the inspector, executed by real qcluster workers.

PostgreSQL only (the workers connect to the test database). 500 customers are created; each
`customer.created` starts a run that tags the customer, then posts to a partner that answers
400 (not retryable), so every run fails at the post. The partner recovers, an account manager
restarts the failed runs through the bulk restart view (a run batch the workers apply), and every
run succeeds with each effect exactly once: one tag per customer, one accepted post per run.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import Client
from django.urls import reverse

from billing import services as billing
from billing.models import Customer, Event
from tests import factories
from tests.httpserver import Reply
from tests.workers import qclusters, wait_for
from workflows.models import Run, RunAudit, RunBatch, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

RUNS = 500


def tag_and_post(url: str) -> dict:
    return {
        "name": "Tag and tell the partner",
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "tag",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.data.object.id }}",
                    "metadata": {"partner": "told"},
                },
            },
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": url, "body": {"customer": "{{ trigger.data.object.id }}"}},
            },
        ],
    }


def count(status: str):
    return lambda: Run.objects.filter(status=status).count() >= RUNS


@pytest.mark.timeout(1500)
def test_it_bulk_restarts_500_failed_runs_and_each_effect_happens_once(
    transactional_db, live, alice, mona, http_server, settings
):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.default = Reply(400, {"error": "partner not ready"})
    workflow = factories.workflow_active(live, tag_and_post(http_server.url("/partner")), alice)
    env = {"BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1"}

    with qclusters(count=1, workers=2, env=env):
        for i in range(RUNS):
            billing.customer_create(environment=live, email=f"bulk{i}@example.com")
        wait_for(count(Run.Status.FAILED), timeout=600, every=0.5)
        assert Run.objects.filter(workflow=workflow).count() == RUNS
        failed_posts = len(http_server.requests)
        assert failed_posts == RUNS  # one refused post per run, not retried

        http_server.default = Reply(200, {"ok": True})
        client = Client()
        client.force_login(mona)
        preview = client.get(reverse("runs:bulk_restart_preview"), {"status": "failed"})
        assert f'<strong id="bulk-total">{RUNS}</strong>' in preview.content.decode()
        response = client.post(
            reverse("runs:batch_start"),
            {
                "action": "restart",
                "scope": "filter",
                "confirmed": "1",
                "status": "failed",
                "workflow": str(workflow.pk),
            },
        )
        assert response.status_code == 302
        wait_for(count(Run.Status.SUCCEEDED), timeout=600, every=0.5)
        batch = RunBatch.objects.get()
        wait_for(lambda: RunBatch.objects.filter(pk=batch.pk, status="succeeded").exists())
        batch.refresh_from_db()
        assert (batch.total, batch.done, batch.skipped, batch.failed) == (RUNS, RUNS, 0, 0)

    runs = Run.objects.filter(workflow=workflow)
    assert set(runs.values_list("status", flat=True)) == {Run.Status.SUCCEEDED}
    assert set(runs.values_list("restart_count", flat=True)) == {1}
    assert RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART, user=mona).count() == RUNS
    # The tag ran once per customer: the restart resumed at the post.
    assert set(StepRun.objects.filter(step_id="tag").values_list("attempts", flat=True)) == {1}
    updated = Counter(
        Event.objects.filter(type="customer.updated").values_list("object_id", flat=True)
    )
    assert len(updated) == RUNS and set(updated.values()) == {1}
    assert Customer.objects.filter(environment=live, metadata__partner="told").count() == RUNS
    # One accepted post per run, each with its own step idempotency key.
    accepted = http_server.requests[failed_posts:]
    keys = Counter(r.headers["idempotency-key"] for r in accepted)
    assert len(accepted) == RUNS
    assert set(keys.values()) == {1}
    assert set(keys) == {f"{r.pk}/post/" for r in runs}
