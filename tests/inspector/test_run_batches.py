"""Bulk restart and cancel from the runs list as run batches: roles, the confirmation of a
filter-wide batch, selected rows, the job's outcomes and audit, exactly once, the progress
panel with its live rows (SQLite and PostgreSQL).

The job (`batch_apply`) is called here the way the worker's task calls it; runs are made and
executed by the engine in this process (`run_execute`). The workers themselves:
test_run_batches_workers.py.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests import factories
from workflows.batches.jobs import APPLY_TASK, batch_apply, batch_create, batches_resume
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.models import Run, RunAudit, RunBatch, RunBatchItem

MANAGERS = ["mona", "dave", "alice"]
READERS = ["vic", "sam"]


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


def queued_batches() -> list[int]:
    from django_q.models import OrmQ

    return [q.task["args"][0] for q in OrmQ.objects.all() if q.func() == APPLY_TASK]


def only_batch() -> RunBatch:
    (batch,) = RunBatch.objects.all()
    return batch


# --- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", [*READERS, "olga"])
def test_it_forbids_bulk_actions_to_readers(request, failed, who):
    client = client_for(request.getfixturevalue(who))
    ids = [str(r.pk) for r in failed]
    start = reverse("runs:batch_start")
    assert client.post(start, {"action": "restart", "runs": ids}).status_code == 403
    assert client.post(start, {"action": "cancel", "runs": ids}).status_code == 403
    assert client.get(reverse("runs:bulk_restart_preview")).status_code == 403
    assert not RunBatch.objects.exists()
    list_page = client.get(reverse("runs:list")).content.decode()
    assert 'id="bulk-bar"' not in list_page and "bf-row-select" not in list_page


@pytest.mark.parametrize("who", MANAGERS)
def test_managers_restart_selected_rows_as_a_job_audited_per_run(
    request, django_capture_on_commit_callbacks, failed, flaky, who
):
    user = request.getfixturevalue(who)
    chosen = failed[:2]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).post(
            reverse("runs:batch_start"),
            {"action": "restart", "mode": "from_failed_step", "runs": [r.pk for r in chosen]},
        )
    batch = only_batch()
    assert response.status_code == 302
    assert response["Location"].endswith(f"?batch={batch.pk}")
    # Nothing restarted in the request: the job is queued for the workers.
    assert queued_batches() == [batch.pk]
    assert Run.objects.filter(status=Run.Status.FAILED).count() == 3
    assert (batch.action, batch.mode, batch.user, batch.total) == (
        "restart",
        "from_failed_step",
        user,
        2,
    )

    assert batch_apply(batch_id=batch.pk, continue_with=None) == RunBatch.Status.SUCCEEDED
    batch.refresh_from_db()
    assert (batch.status, batch.done, batch.skipped, batch.failed) == ("succeeded", 2, 0, 0)
    assert batch.finished_at is not None
    assert set(Run.objects.filter(status=Run.Status.PENDING).values_list("pk", flat=True)) == {
        r.pk for r in chosen
    }
    audits = RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART, user=user)
    assert sorted(a.run_id for a in audits) == sorted(r.pk for r in chosen)
    assert {a.note for a in audits} == {f"batch {batch.pk}"}
    flaky["fail"] = False
    for run in chosen:
        assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    assert set(flaky["done"].values()) == {1}


def test_selected_rows_must_be_runs_of_the_environment(mona, failed, sandbox_failed):
    client = client_for(mona)
    response = client.post(
        reverse("runs:batch_start"),
        {"action": "restart", "runs": [failed[0].pk, sandbox_failed.pk]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    assert f"No such run: {sandbox_failed.pk}." in response.content.decode()
    response = client.post(
        reverse("runs:batch_start"), {"action": "restart"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and "Select at least one run." in response.content.decode()
    response = client.post(reverse("runs:batch_start"), {"action": "rerun", "runs": [failed[0].pk]})
    assert (
        response.status_code == 400
        and "must be &#x27;restart&#x27; or" in response.content.decode()
    )
    assert not RunBatch.objects.exists()


# --- a filter-wide batch -------------------------------------------------------------------------


def test_a_filter_wide_restart_is_confirmed_with_the_grouped_preview_first(
    mona, failed, sandbox_failed
):
    client = client_for(mona)
    response = client.post(
        reverse("runs:batch_start"),
        {"action": "restart", "scope": "filter", "status": "failed"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert '<strong id="bulk-total">3</strong>' in body  # not the sandbox's failed run
    assert "3 will re-run steps with side effects" in body
    assert 'name="confirmed" value="1"' in body
    assert not RunBatch.objects.exists()


def test_the_preview_page_confirms_into_a_job(mona, failed):
    response = client_for(mona).get(
        reverse("runs:bulk_restart_preview"), {"status": "failed"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.strip().startswith('<div class="bf-preview" id="batch-panel">')
    assert reverse("runs:batch_start") in body and 'id="confirm-bulk-restart"' in body


def test_a_confirmed_filter_batch_is_resolved_by_the_job_not_the_request(
    mona, failed, flaky_workflow, alice, live, flaky
):
    other = factories.workflow_active(live, factories.flaky_definition("Other"), alice)
    other_run = factories.run_executed(other, customer=factories.customer(live))
    response = client_for(mona).post(
        reverse("runs:batch_start"),
        {"action": "restart", "scope": "filter", "confirmed": "1", "workflow": str(other.pk)},
        HTTP_HX_REQUEST="true",
    )
    batch = only_batch()
    assert response.status_code == 200
    assert 'id="batch-progress"' in response.content.decode()
    assert batch.selection["filter"] == {"workflow": str(other.pk)}
    assert batch.total == 0 and not batch.items.exists() and batch.resolved_at is None
    # A run failing after the click is not part of the batch.
    late = factories.run_executed(other, customer=factories.customer(live))
    batch_apply(batch_id=batch.pk, continue_with=None)
    batch.refresh_from_db()
    assert (batch.total, batch.done) == (1, 1)
    other_run.refresh_from_db()
    late.refresh_from_db()
    assert other_run.status == Run.Status.PENDING and late.status == Run.Status.FAILED
    assert Run.objects.filter(pk__in=[r.pk for r in failed], status="failed").count() == 3


def test_a_filter_wide_cancel_touches_only_pending_and_running_runs(
    mona, failed, flaky_workflow, live
):
    pending = [
        run_start_manual(workflow=flaky_workflow, input={"customer": factories.customer(live).pk})
        for _ in range(2)
    ]
    client = client_for(mona)
    confirm = client.post(
        reverse("runs:batch_start"),
        {"action": "cancel", "scope": "filter", "mode": "from_start"},
        HTTP_HX_REQUEST="true",
    )
    total = '<strong id="bulk-total">2</strong> pending, running or waiting runs'
    assert total in confirm.content.decode()
    client.post(
        reverse("runs:batch_start"),
        {"action": "cancel", "scope": "filter", "confirmed": "1"},
        HTTP_HX_REQUEST="true",
    )
    batch = only_batch()
    batch_apply(batch_id=batch.pk, continue_with=None)
    batch.refresh_from_db()
    assert (batch.action, batch.mode, batch.total, batch.done) == ("cancel", "", 2, 2)
    assert set(Run.objects.filter(status="canceled").values_list("pk", flat=True)) == {
        r.pk for r in pending
    }
    assert RunAudit.objects.filter(action=RunAudit.Action.BULK_CANCEL, user=mona).count() == 2


# --- the job -------------------------------------------------------------------------------------


def test_runs_that_cannot_change_are_skipped_with_the_reason(mona, failed, flaky_workflow, live):
    succeeded_customer = factories.customer(live)
    running = run_start_manual(workflow=flaky_workflow, input={"customer": succeeded_customer.pk})
    batch = batch_create(
        environment=live, action="restart", runs=[*(r.pk for r in failed), running.pk], user=mona
    )
    batch_apply(batch_id=batch.pk, continue_with=None)
    batch.refresh_from_db()
    assert (batch.total, batch.done, batch.skipped, batch.failed) == (4, 3, 1, 0)
    assert batch.reasons == {"pending: only failed runs restart": 1}
    item = RunBatchItem.objects.get(batch=batch, run=running)
    assert (item.outcome, item.message) == ("skipped", "pending: only failed runs restart")


def test_a_batch_applied_again_changes_nothing(mona, failed, live):
    batch = batch_create(environment=live, action="restart", runs=[r.pk for r in failed], user=mona)
    batch_apply(batch_id=batch.pk, continue_with=None)
    # A redelivered task, and a second worker told by the sweep: the batch is finished.
    assert batch_apply(batch_id=batch.pk, continue_with=None) == RunBatch.Status.SUCCEEDED
    RunBatch.objects.filter(pk=batch.pk).update(status=RunBatch.Status.RUNNING)
    batch_apply(batch_id=batch.pk, continue_with=None)
    assert set(
        Run.objects.filter(pk__in=[r.pk for r in failed]).values_list("restart_count", flat=True)
    ) == {1}
    assert RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART).count() == 3


def test_a_job_out_of_time_hands_the_rest_to_a_new_task(mona, failed, live):
    batch = batch_create(environment=live, action="restart", runs=[r.pk for r in failed], user=mona)
    handed: list[int] = []
    assert batch_apply(batch_id=batch.pk, budget=0, continue_with=handed.append) == "continued"
    batch.refresh_from_db()
    assert handed == [batch.pk] and batch.status == RunBatch.Status.RUNNING
    assert 0 < batch.done <= 3
    batch_apply(batch_id=batch.pk, continue_with=None)
    batch.refresh_from_db()
    assert (batch.status, batch.done) == ("succeeded", 3)


def test_the_sweep_enqueues_again_a_batch_whose_worker_died(mona, failed, live):
    from datetime import timedelta

    batch = batch_create(environment=live, action="restart", runs=[r.pk for r in failed], user=mona)
    old = timezone.now() - timedelta(minutes=5)
    RunBatch.objects.filter(pk=batch.pk).update(
        status=RunBatch.Status.RUNNING, created=old, heartbeat_at=old
    )
    assert batches_resume() == 1
    assert queued_batches() == [batch.pk]
    RunBatch.objects.filter(pk=batch.pk).update(heartbeat_at=timezone.now())
    assert batches_resume() == 0  # alive: its worker renews the heartbeat


def test_an_unavailable_mode_is_passed_through_and_reported(mona, failed, live):
    batch = batch_create(
        environment=live, action="restart", runs=[failed[0].pk], mode="from_start", user=mona
    )
    batch_apply(batch_id=batch.pk, continue_with=None)
    batch.refresh_from_db()
    assert batch.mode == "from_start"
    # Whatever the engine says of the mode (available, or a skip with its reason), once.
    assert batch.done + batch.skipped == 1


# --- progress panel and live rows ----------------------------------------------------------------


def test_the_progress_panel_polls_and_swaps_the_shown_rows_it_changed(mona, vic, failed, live):
    batch = batch_create(
        environment=live, action="restart", runs=[r.pk for r in failed[:2]], user=mona
    )
    url = reverse("runs:batch", args=[batch.pk])
    shown = [r.pk for r in failed]
    before = client_for(mona).get(url, {"shown": shown}, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in before and "0 / 2" in before
    assert "hx-swap-oob" not in before
    batch_apply(batch_id=batch.pk, continue_with=None)
    after = client_for(vic).get(url, {"shown": shown}, HTTP_HX_REQUEST="true").content.decode()
    assert "2 / 2" in after and 'id="batch-done">2<' in after
    assert 'hx-trigger="every 1s"' not in after  # finished: the panel stops polling
    for run in failed[:2]:
        assert (
            f'<tr id="run-row-{run.pk}" class="bf-run-row bf-run-pending" hx-swap-oob="true"'
            in after
        )
    assert f'id="run-row-{failed[2].pk}"' not in after
    # A reader sees the rows without the selection boxes.
    assert "bf-row-select" not in after


def test_the_progress_panel_is_scoped_to_the_environment(mona, sandbox, failed, sandbox_failed):
    batch = batch_create(environment=sandbox, action="restart", runs=[sandbox_failed.pk], user=mona)
    assert client_for(mona).get(reverse("runs:batch", args=[batch.pk])).status_code == 404


def test_the_list_shows_selection_boxes_and_the_started_batch(mona, failed, live):
    batch = batch_create(environment=live, action="restart", runs=[failed[0].pk], user=mona)
    body = client_for(mona).get(reverse("runs:list"), {"batch": batch.pk}).content.decode()
    assert 'id="bulk-bar"' in body and 'id="select-all-matching"' in body
    assert f'value="{failed[0].pk}" aria-label="Select run {failed[0].pk}"' in body
    assert f'hx-get="{reverse("runs:batch", args=[batch.pk])}" hx-trigger="load"' in body
