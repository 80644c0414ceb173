"""The run page's restart modes, resolve without restart, notes and attempts, per role.

Runs are executed in this process (`run_execute`); the `tests.flaky` action fails while its
state says so. "Ledger sync" tags the customer (a billing change), then fails at `sync`.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests import factories
from workflows.engine.executor import run_execute
from workflows.models import Run, RunAudit, RunNote, StepRun

MANAGERS = ["mona", "dave", "alice"]
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def failed_run(flaky_workflow, alice, live):
    customer = factories.customer(live)
    run = factories.run_executed(flaky_workflow, customer=customer, user=alice)
    assert run.status == Run.Status.FAILED
    return run


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def plans(body: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'data-step="([^"]+)" data-plan="([^"]+)"', body))


# --- restart modes ----------------------------------------------------------------------------


def test_the_preview_changes_with_the_mode_chosen(cast, failed_run):
    client = client_for(cast["mona"])
    url = reverse("runs:restart_preview", args=[failed_run.pk])

    default = client.get(url, **HX).content.decode()
    assert plans(default) == {"tag": "kept", "sync": "again"}
    assert 'value="from_failed_step" id="mode-from_failed_step" checked' in default
    assert 'hx-trigger="change"' in default

    start = client.get(url, {"mode": "from_start"}, **HX).content.decode()
    assert plans(start) == {"tag": "again", "sync": "again"}
    # The tag already happened: the preview says it happens again, naming the step.
    assert 'id="repeats-warning"' in start and "<code>tag</code>" in start
    assert '<input type="hidden" name="mode" value="from_start">' in start


def test_an_unknown_mode_in_the_preview_names_the_field(cast, failed_run):
    url = reverse("runs:restart_preview", args=[failed_run.pk])
    body = client_for(cast["mona"]).get(url, {"mode": "sideways"}).content.decode()
    assert 'id="mode-error"' in body and "mode: Unknown restart mode" in body
    assert 'id="confirm-restart"' not in body


def test_latest_version_without_a_published_version_is_explained(cast, failed_run, alice):
    from workflows import services

    services.workflow_delete(workflow=failed_run.workflow, deleted_by=alice)
    url = reverse("runs:restart_preview", args=[failed_run.pk])
    body = client_for(cast["mona"]).get(url, {"mode": "latest_version"}).content.decode()
    assert "is deleted; it has no latest version" in body
    assert 'id="confirm-restart"' not in body
    response = client_for(cast["mona"]).post(
        reverse("runs:restart", args=[failed_run.pk]), {"mode": "latest_version"}
    )
    assert response.status_code == 302
    assert Run.objects.get(pk=failed_run.pk).status == Run.Status.FAILED


@pytest.mark.parametrize("name", MANAGERS)
def test_managers_restart_from_the_start_and_it_is_audited(cast, failed_run, flaky, name):
    response = client_for(cast[name]).post(
        reverse("runs:restart", args=[failed_run.pk]), {"mode": "from_start"}
    )
    assert response.status_code == 302
    run = Run.objects.get(pk=failed_run.pk)
    assert (run.status, run.restart_count) == (Run.Status.PENDING, 1)
    assert RunAudit.objects.get(run=run).user == cast[name]
    flaky["fail"] = False
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    tag = StepRun.objects.get(run=run, step_id="tag")
    assert [a["restart"] for a in tag.attempt_log] == [0, 1]


@pytest.mark.parametrize("name", ["vic", "sam", "olga"])
def test_readers_may_not_restart_in_any_mode_or_resolve(cast, failed_run, name):
    client = client_for(cast[name])
    restart = client.post(reverse("runs:restart", args=[failed_run.pk]), {"mode": "from_start"})
    resolve = client.post(reverse("runs:resolve", args=[failed_run.pk]), {"note": "fine"})
    preview = client.get(reverse("runs:resolve", args=[failed_run.pk]))
    assert restart.status_code == resolve.status_code == preview.status_code == 403
    assert Run.objects.get(pk=failed_run.pk).status == Run.Status.FAILED
    assert not RunNote.objects.exists()


# --- resolve --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MANAGERS)
def test_managers_resolve_a_failed_run_with_a_note(cast, failed_run, name):
    client = client_for(cast[name])
    form = client.get(reverse("runs:resolve", args=[failed_run.pk]), **HX).content.decode()
    assert 'name="note"' in form

    response = client.post(
        reverse("runs:resolve", args=[failed_run.pk]), {"note": "Synced by hand."}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert f"Run {failed_run.pk} resolved." in body
    assert 'class="bf-badge bf-badge-resolved" id="run-status">resolved' in body
    assert "Synced by hand." in body and 'id="resolve-link"' not in body
    note = RunNote.objects.get(run=failed_run)
    assert (note.kind, note.user) == (RunNote.Kind.RESOLUTION, cast[name])
    assert RunAudit.objects.get(run=failed_run).action == RunAudit.Action.RESOLVE


def test_resolve_without_a_note_shows_the_form_again_naming_note(cast, failed_run):
    response = client_for(cast["mona"]).post(
        reverse("runs:resolve", args=[failed_run.pk]), {"note": "   "}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="resolve-error">note: Write a note' in body
    assert Run.objects.get(pk=failed_run.pk).status == Run.Status.FAILED


def test_resolving_a_run_that_did_not_fail_names_its_status(cast, flaky_workflow, flaky, live):
    flaky["fail"] = False
    run = factories.run_executed(flaky_workflow, customer=factories.customer(live))
    response = client_for(cast["mona"]).post(
        reverse("runs:resolve", args=[run.pk]), {"note": "why"}, **HX
    )
    assert f"Run {run.pk} is succeeded; only failed runs can be resolved." in (
        response.content.decode()
    )
    assert not RunNote.objects.exists()


def test_resolved_runs_show_in_the_list_filter_and_dashboard(cast, failed_run):
    client = client_for(cast["mona"])
    client.post(reverse("runs:resolve", args=[failed_run.pk]), {"note": "done"})
    listed = client.get(reverse("runs:list"), {"status": "resolved"}).content.decode()
    assert f'id="run-row-{failed_run.pk}"' in listed
    assert 'bf-badge-resolved">resolved' in listed
    assert '<option value="resolved"' in listed
    failed = client.get(reverse("runs:list"), {"status": "failed"}).content.decode()
    assert f'id="run-row-{failed_run.pk}"' not in failed
    dashboard = client.get(reverse("runs:dashboard")).content.decode()
    assert "resolved" in dashboard


# --- notes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sam", *MANAGERS])
def test_support_and_up_add_notes(cast, failed_run, name):
    client = client_for(cast[name])
    page = client.get(reverse("runs:detail", args=[failed_run.pk])).content.decode()
    assert 'id="note-form"' in page
    response = client.post(
        reverse("runs:note", args=[failed_run.pk]), {"body": "Customer called."}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 200 and 'id="run-notes"' in body
    assert "Customer called." in body and cast[name].get_username() in body
    assert RunNote.objects.get(run=failed_run).user == cast[name]


@pytest.mark.parametrize("name", ["vic", "olga"])
def test_viewers_may_not_add_notes(cast, failed_run, name):
    client = client_for(cast[name])
    if name == "vic":
        page = client.get(reverse("runs:detail", args=[failed_run.pk])).content.decode()
        assert 'id="note-form"' not in page
    response = client.post(reverse("runs:note", args=[failed_run.pk]), {"body": "x"})
    assert response.status_code == 403
    assert not RunNote.objects.exists()


def test_an_empty_note_is_refused_naming_body(cast, failed_run):
    response = client_for(cast["sam"]).post(
        reverse("runs:note", args=[failed_run.pk]), {"body": ""}, **HX
    )
    assert 'id="note-error">body: Write a note' in response.content.decode()
    assert not RunNote.objects.exists()


def test_notes_are_scoped_to_the_environment(cast, sandbox, flaky, alice):
    workflow = factories.workflow_active(sandbox, factories.flaky_definition("Sandbox"), alice)
    run = factories.run_executed(workflow, customer=factories.customer(sandbox), user=alice)
    client = client_for(cast["mona"])
    assert client.post(reverse("runs:note", args=[run.pk]), {"body": "x"}).status_code == 404
    assert client.post(reverse("runs:resolve", args=[run.pk]), {"note": "x"}).status_code == 404


# --- attempts ---------------------------------------------------------------------------------


def test_a_restarted_step_shows_each_attempt_with_its_own_timing(cast, failed_run, flaky):
    client = client_for(cast["mona"])
    client.post(reverse("runs:restart", args=[failed_run.pk]))
    flaky["fail"] = False
    assert run_execute(run_id=failed_run.pk) == Run.Status.SUCCEEDED

    body = client.get(reverse("runs:detail", args=[failed_run.pk])).content.decode()
    assert 'class="bf-attempts bf-attempt-log"' in body
    assert '<tr class="bf-attempt-failed"><td>1</td><td>first run</td>' in body
    assert '<tr class="bf-attempt-succeeded"><td>1</td><td>restart 1</td>' in body


def test_the_run_download_has_the_notes_and_every_attempt(cast, failed_run):
    client = client_for(cast["mona"])
    client.post(reverse("runs:resolve", args=[failed_run.pk]), {"note": "Handled."})
    document = client.get(reverse("runs:export_run", args=[failed_run.pk])).json()
    assert [(n["kind"], n["body"], n["author"]) for n in document["notes"]] == [
        ("resolution", "Handled.", "mona")
    ]
    sync = next(s for s in document["steps"] if s["step_id"] == "sync")
    assert [a["status"] for a in sync["attempt_log"]] == ["failed"]


def test_the_bulk_preview_lists_the_steps_each_mode_runs(live, failed_run):
    from workflows.inspector.audit import runs_restart_bulk_preview
    from workflows.inspector.selectors import RunFilters

    filters = RunFilters.from_query({"status": "failed"})
    default = runs_restart_bulk_preview(environment=live, filters=filters)
    start = runs_restart_bulk_preview(environment=live, filters=filters, mode="from_start")
    assert [s["step_id"] for s in default.groups[0].steps] == ["sync"]
    assert [(s["step_id"], s["repeats_effects"]) for s in start.groups[0].steps] == [
        ("tag", True),
        ("sync", False),
    ]
