"""The run inspector's views, per role, per environment, per method (SQLite and PostgreSQL).

Runs are made and executed through the engine in this process (`run_execute`, what a worker
calls); the `tests.flaky` action fails while its state says so, then succeeds.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from billing.api_keys import api_key_create
from tests import factories
from tests.api_client import Api
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.models import Run, RunAudit, StepRun

MANAGERS = ["mona", "dave", "alice"]
READERS = ["vic", "sam"]


@pytest.fixture
def ana(live):
    return factories.CustomerFactory(environment=live, email="ana@example.com")


@pytest.fixture
def failed_run(flaky_workflow, ana, alice):
    run = factories.run_executed(flaky_workflow, customer=ana, user=alice)
    assert run.status == Run.Status.FAILED
    return run


@pytest.fixture
def sandbox_run(sandbox, alice, flaky):
    workflow = factories.workflow_active(sandbox, factories.flaky_definition("Sandbox sync"), alice)
    run = factories.run_executed(workflow, customer=factories.customer(sandbox), user=alice)
    assert run.status == Run.Status.FAILED
    return run


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


HX = {"HTTP_HX_REQUEST": "true"}


# --- runs list --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READERS + MANAGERS)
def test_it_lists_runs_for_every_role(cast, failed_run, name):
    response = client_for(cast[name]).get(reverse("runs:list"))
    assert response.status_code == 200
    assert f'id="run-row-{failed_run.pk}"' in response.content.decode()


def test_it_forbids_the_list_to_a_user_without_a_role(cast, failed_run):
    assert client_for(cast["olga"]).get(reverse("runs:list")).status_code == 403


def test_it_sends_anonymous_visitors_to_the_login_page(failed_run):
    response = Client().get(reverse("runs:list"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_it_never_lists_another_environments_runs(cast, failed_run, sandbox_run):
    body = client_for(cast["alice"]).get(reverse("runs:list")).content.decode()
    assert f'id="run-row-{failed_run.pk}"' in body
    assert f'id="run-row-{sandbox_run.pk}"' not in body


def test_it_filters_to_failed_runs(cast, flaky_workflow, ana, failed_run, flaky):
    flaky["fail"] = False
    ok = factories.run_executed(flaky_workflow, customer=ana)
    assert ok.status == Run.Status.SUCCEEDED
    body = client_for(cast["mona"]).get(reverse("runs:list"), {"status": "failed"}).content
    assert f'id="run-row-{failed_run.pk}"'.encode() in body
    assert f'id="run-row-{ok.pk}"'.encode() not in body


def test_it_filters_by_the_object_a_run_changed(cast, flaky_workflow, failed_run, live, flaky):
    other = factories.run_executed(flaky_workflow, customer=factories.customer(live))
    customer_id = failed_run.trigger["input"]["customer"]
    body = client_for(cast["vic"]).get(reverse("runs:list"), {"object_id": customer_id}).content
    assert f'id="run-row-{failed_run.pk}"'.encode() in body
    assert f'id="run-row-{other.pk}"'.encode() not in body


def test_it_renders_the_whole_page_without_htmx(cast, failed_run):
    body = client_for(cast["vic"]).get(reverse("runs:list")).content.decode()
    assert "<html" in body
    assert 'id="run-filters"' in body


def test_it_renders_only_the_results_for_htmx(cast, failed_run):
    body = client_for(cast["vic"]).get(reverse("runs:list"), **HX).content.decode()
    assert "<html" not in body
    assert 'id="run-filters"' not in body
    assert body.strip().startswith('<div id="run-results">')


def test_it_polls_running_rows_and_stops_when_they_end(cast, flaky_workflow, ana, failed_run):
    pending = run_start_manual(workflow=flaky_workflow, input={"customer": ana.pk})
    client = client_for(cast["vic"])
    body = client.get(reverse("runs:list")).content.decode()
    row = body.split(f'id="run-row-{pending.pk}"')[1].split(">")[0]
    assert "every 2s" in row
    failed_row = body.split(f'id="run-row-{failed_run.pk}"')[1].split(">")[0]
    assert "hx-trigger" not in failed_row
    run_execute(run_id=pending.pk)
    refreshed = client.get(reverse("runs:row", args=[pending.pk]), **HX).content.decode()
    assert refreshed.strip().startswith(f'<tr id="run-row-{pending.pk}"')
    assert "hx-trigger" not in refreshed.split(">")[0]
    assert "failed" in refreshed


# --- run page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READERS + MANAGERS)
def test_it_shows_the_run_page_with_the_failed_steps_error(cast, failed_run, name):
    body = client_for(cast[name]).get(reverse("runs:detail", args=[failed_run.pk])).content
    body = body.decode()
    assert "Ledger said no: account frozen." in body
    assert 'id="step-sync"' in body
    assert 'id="wf-node-sync"' in body  # the canvas
    assert "wf-status-failed" in body


def test_it_shows_changed_objects_with_a_diff_and_an_admin_link(cast, failed_run):
    body = client_for(cast["vic"]).get(reverse("runs:detail", args=[failed_run.pk])).content
    body = body.decode()
    customer_id = failed_run.trigger["input"]["customer"]
    assert reverse("admin:billing_customer_change", args=[customer_id]) in body
    assert "bf-diff" in body
    assert "pending" in body  # metadata.synced after


def test_it_answers_404_for_another_environments_run(cast, sandbox_run):
    response = client_for(cast["alice"]).get(reverse("runs:detail", args=[sandbox_run.pk]))
    assert response.status_code == 404


def test_it_renders_only_the_run_body_for_htmx(cast, failed_run):
    body = client_for(cast["vic"]).get(reverse("runs:detail", args=[failed_run.pk]), **HX)
    text = body.content.decode()
    assert "<html" not in text
    assert text.strip().startswith('<div id="run-body"')


def test_it_hides_restart_and_cancel_from_readers(cast, failed_run):
    body = client_for(cast["sam"]).get(reverse("runs:detail", args=[failed_run.pk])).content
    assert b'id="restart-link"' not in body
    body = client_for(cast["mona"]).get(reverse("runs:detail", args=[failed_run.pk])).content
    assert b'id="restart-link"' in body


# --- restart ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READERS)
def test_it_forbids_restart_to_readers(cast, failed_run, name):
    client = client_for(cast[name])
    assert client.get(reverse("runs:restart_preview", args=[failed_run.pk])).status_code == 403
    assert client.post(reverse("runs:restart", args=[failed_run.pk])).status_code == 403
    failed_run.refresh_from_db()
    assert failed_run.status == Run.Status.FAILED
    assert not RunAudit.objects.exists()


def test_it_previews_the_steps_a_restart_runs_again_and_marks_side_effects(cast, failed_run):
    response = client_for(cast["mona"]).get(reverse("runs:restart_preview", args=[failed_run.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    sync_row = body.split('data-step="sync"')[1].split("</tr>")[0]
    tag_row = body.split('data-step="tag"')[1].split("</tr>")[0]
    assert "runs again" in sync_row
    assert "changes data or sends" in sync_row
    assert "kept (not run)" in tag_row
    assert 'id="confirm-restart"' in body


def test_it_previews_as_a_partial_for_htmx(cast, failed_run):
    url = reverse("runs:restart_preview", args=[failed_run.pk])
    body = client_for(cast["mona"]).get(url, **HX).content.decode()
    assert "<html" not in body
    assert body.strip().startswith('<div class="bf-preview" id="restart-preview">')


@pytest.mark.parametrize("name", MANAGERS)
def test_it_restarts_a_failed_run_for_managers_and_audits_it(cast, failed_run, flaky, name):
    user = cast[name]
    response = client_for(user).post(reverse("runs:restart", args=[failed_run.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:detail", args=[failed_run.pk])
    failed_run.refresh_from_db()
    assert failed_run.status == Run.Status.PENDING
    audit = RunAudit.objects.get(run=failed_run)
    assert (audit.action, audit.user) == (RunAudit.Action.RESTART, user)
    flaky["fail"] = False
    assert run_execute(run_id=failed_run.pk) == Run.Status.SUCCEEDED
    # The earlier step was not executed again: one billing change, one sync.
    tag = StepRun.objects.get(run=failed_run, step_id="tag")
    assert tag.attempts == 1
    assert flaky["done"] == {f"{failed_run.pk}/sync/": 1}


def test_it_shows_the_audit_log_on_the_run_page(cast, failed_run):
    client = client_for(cast["mona"])
    client.post(reverse("runs:restart", args=[failed_run.pk]))
    body = client.get(reverse("runs:detail", args=[failed_run.pk])).content.decode()
    audit = body.split('id="run-audit"')[1].split("</table>")[0]
    assert "Restart" in audit
    assert "mona" in audit


def test_the_audit_log_names_the_api_key_of_an_api_restart(cast, live, failed_run):
    key, raw = api_key_create(environment=live, name="<ops> bot", role="developer")
    assert Api(raw).post(f"/runs/{failed_run.pk}/restart").status_code == 200

    response = client_for(cast["vic"]).get(reverse("runs:detail", args=[failed_run.pk]))

    assert response.status_code == 200
    audit = response.content.decode().split('id="run-audit"')[1].split("</table>")[0]
    row = audit.split('class="bf-audit-restart"')[1].split("</tr>")[0]
    # Named by key, prefix and environment, and escaped like any other text.
    assert f"API key &lt;ops&gt; bot ({key.prefix}…, Live)" in row
    assert "the system" not in row


def test_it_answers_an_htmx_restart_with_the_new_run_body(cast, failed_run):
    url = reverse("runs:restart", args=[failed_run.pk])
    response = client_for(cast["mona"]).post(url, **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith('<div id="run-body"')
    assert "restarted at its failed step" in body
    assert response["HX-Retarget"] == "#run-body"


def test_it_refuses_to_restart_a_run_that_has_not_failed(cast, flaky_workflow, ana, flaky):
    flaky["fail"] = False
    ok = factories.run_executed(flaky_workflow, customer=ana)
    response = client_for(cast["mona"]).post(reverse("runs:restart", args=[ok.pk]), follow=True)
    assert "only failed runs restart" in response.content.decode()
    ok.refresh_from_db()
    assert ok.status == Run.Status.SUCCEEDED
    assert not RunAudit.objects.exists()


def test_it_only_restarts_by_post(cast, failed_run):
    client = client_for(cast["mona"])
    assert client.get(reverse("runs:restart", args=[failed_run.pk])).status_code == 405
    assert client.get(reverse("runs:cancel", args=[failed_run.pk])).status_code == 405
    assert client.get(reverse("runs:batch_start")).status_code == 405
    assert client.get(reverse("runs:notifications_update")).status_code == 405


def test_it_rejects_a_restart_without_a_csrf_token(cast, failed_run):
    client = client_for(cast["mona"], enforce_csrf_checks=True)
    assert client.post(reverse("runs:restart", args=[failed_run.pk])).status_code == 403
    failed_run.refresh_from_db()
    assert failed_run.status == Run.Status.FAILED


def test_it_answers_404_when_restarting_another_environments_run(cast, sandbox_run):
    client = client_for(cast["alice"])
    assert client.post(reverse("runs:restart", args=[sandbox_run.pk])).status_code == 404
    assert client.get(reverse("runs:restart_preview", args=[sandbox_run.pk])).status_code == 404
    sandbox_run.refresh_from_db()
    assert sandbox_run.status == Run.Status.FAILED


# --- cancel -----------------------------------------------------------------------------------


@pytest.fixture
def pending_run(flaky_workflow, ana):
    return run_start_manual(workflow=flaky_workflow, input={"customer": ana.pk})


@pytest.mark.parametrize("name", READERS)
def test_it_forbids_cancel_to_readers(cast, pending_run, name):
    response = client_for(cast[name]).post(reverse("runs:cancel", args=[pending_run.pk]))
    assert response.status_code == 403
    pending_run.refresh_from_db()
    assert pending_run.status == Run.Status.PENDING


@pytest.mark.parametrize("name", MANAGERS)
def test_it_cancels_a_pending_run_for_managers_and_audits_it(cast, pending_run, name):
    response = client_for(cast[name]).post(reverse("runs:cancel", args=[pending_run.pk]))
    assert response.status_code == 302
    pending_run.refresh_from_db()
    assert pending_run.status == Run.Status.CANCELED
    audit = RunAudit.objects.get(run=pending_run)
    assert (audit.action, audit.user.username) == (RunAudit.Action.CANCEL, name)


def test_it_answers_404_when_canceling_another_environments_run(cast, sandbox, alice, flaky):
    workflow = factories.workflow_active(sandbox, factories.flaky_definition("Sb"), alice)
    run = run_start_manual(workflow=workflow, input={"customer": factories.customer(sandbox).pk})
    assert client_for(cast["mona"]).post(reverse("runs:cancel", args=[run.pk])).status_code == 404
    run.refresh_from_db()
    assert run.status == Run.Status.PENDING


def test_it_lists_a_page_in_a_constant_number_of_queries(cast, flaky_workflow, live, failed_run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(cast["vic"])
    client.get(reverse("runs:list"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("runs:list"))
    for _ in range(4):
        factories.run_executed(flaky_workflow, customer=factories.customer(live))
    with CaptureQueriesContext(connection) as more:
        client.get(reverse("runs:list"))
    assert len(more.captured_queries) == len(few.captured_queries)


def test_it_shows_a_run_page_in_a_constant_number_of_queries(
    cast, flaky_workflow, live, failed_run
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(cast["vic"])
    client.get(reverse("runs:detail", args=[failed_run.pk]))
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("runs:detail", args=[failed_run.pk]))
    assert len(queries.captured_queries) <= 12


def test_it_shows_the_recursion_chain_with_links(cast, flaky_workflow, ana, failed_run):
    caused = factories.run_executed(flaky_workflow, customer=ana)
    force_rows(Run.objects.filter(pk=caused.pk)).update(
        cause_chain=[[flaky_workflow.pk, failed_run.pk]]
    )
    body = client_for(cast["vic"]).get(reverse("runs:detail", args=[caused.pk])).content.decode()
    chain = body.split('class="bf-chain"')[1].split("</ol>")[0]
    assert reverse("runs:detail", args=[failed_run.pk]) in chain
    assert "Ledger sync" in chain
    assert "this run" in chain
