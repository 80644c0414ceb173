"""Bulk restart of the failed runs matching a filter: preview counts, roles, audit, batches."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests import factories
from workflows.engine.executor import run_execute
from workflows.inspector.audit import runs_restart_bulk
from workflows.inspector.selectors import RunFilters
from workflows.models import Run, RunAudit


@pytest.fixture
def failed(flaky_workflow, live):
    runs = [
        factories.run_executed(flaky_workflow, customer=factories.customer(live)) for _ in range(3)
    ]
    assert {r.status for r in runs} == {Run.Status.FAILED}
    return runs


@pytest.fixture
def sandbox_failed(sandbox, alice, flaky):
    wf = factories.workflow_active(sandbox, factories.flaky_definition("Sb"), alice)
    return factories.run_executed(wf, customer=factories.customer(sandbox))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["vic", "sam"])
def test_it_forbids_bulk_restart_to_readers(request, failed, who):
    client = client_for(request.getfixturevalue(who))
    assert client.get(reverse("runs:bulk_restart_preview")).status_code == 403
    assert client.post(reverse("runs:bulk_restart"), {"status": "failed"}).status_code == 403
    assert Run.objects.filter(status=Run.Status.FAILED).count() == 3


def test_it_previews_counts_and_the_steps_that_run_again(mona, failed, sandbox_failed):
    response = client_for(mona).get(reverse("runs:bulk_restart_preview"), {"status": "failed"})
    body = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="bulk-total">3</strong>' in body  # not the sandbox's failed run
    assert "3 will re-run steps with side effects" in body
    group = body.split("bf-preview-groups")[1]
    assert "<code>sync</code>" in group
    assert "<code>tag</code>" not in group.split("Steps that run again")[1]


def test_it_previews_as_a_partial_for_htmx(mona, failed):
    response = client_for(mona).get(
        reverse("runs:bulk_restart_preview"), {"status": "failed"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert "<html" not in body
    assert body.strip().startswith('<div class="bf-preview" id="bulk-preview">')


@pytest.mark.parametrize("who", ["mona", "dave", "alice"])
def test_it_restarts_every_matching_failed_run_and_audits_each(
    request, failed, sandbox_failed, flaky, who
):
    user = request.getfixturevalue(who)
    response = client_for(user).post(reverse("runs:bulk_restart"), {"status": "failed"})
    assert response.status_code == 302
    assert Run.objects.filter(pk__in=[r.pk for r in failed], status="pending").count() == 3
    sandbox_failed.refresh_from_db()
    assert sandbox_failed.status == Run.Status.FAILED
    audits = RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART, user=user)
    assert sorted(a.run_id for a in audits) == sorted(r.pk for r in failed)
    flaky["fail"] = False
    for run in failed:
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    assert sorted(flaky["done"]) == sorted(f"{r.pk}/sync/" for r in failed)
    assert set(flaky["done"].values()) == {1}


def test_it_restarts_only_runs_matching_the_filter(
    mona, failed, flaky_workflow, alice, live, flaky
):
    other = factories.workflow_active(live, factories.flaky_definition("Other"), alice)
    other_run = factories.run_executed(other, customer=factories.customer(live))
    client_for(mona).post(reverse("runs:bulk_restart"), {"workflow": str(other.pk)})
    other_run.refresh_from_db()
    assert other_run.status == Run.Status.PENDING
    assert Run.objects.filter(pk__in=[r.pk for r in failed], status="failed").count() == 3


def test_it_works_in_bounded_batches_and_reports_what_remains(mona, failed, live):
    result = runs_restart_bulk(
        environment=live, filters=RunFilters(), user=mona, batch_size=2, max_runs=2
    )
    assert len(result.restarted) == 2
    assert result.remaining == 1
    again = runs_restart_bulk(environment=live, filters=RunFilters(), user=mona, batch_size=2)
    assert len(again.restarted) == 1
    assert again.remaining == 0


def test_it_answers_an_htmx_bulk_restart_with_the_result(mona, failed):
    response = client_for(mona).post(
        reverse("runs:bulk_restart"), {"status": "failed"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert 'id="bulk-result"' in body
    assert "Restarted 3 failed runs." in body
