"""`/api/v1/runs/{id}/restart` with a mode, `/notes` and `/resolve`: input, states, roles.

Runs are made and executed by the real engine in this process; the three modes' effects with
real workers are in tests/engine/test_restart_modes_workers.py.
"""

from __future__ import annotations

import pytest

from tests import factories
from tests.api.test_api_runs import _executed, _run
from tests.api_client import api_for, error_of
from workflows import services
from workflows.models import Run, RunAudit, RunNote, StepRun

TAG = factories.tag_by_hand_definition()


@pytest.fixture
def tagging(live):
    return factories.workflow_active(live, TAG)


@pytest.fixture
def failed(tagging):
    return _executed(_run(tagging, "cus_missing"))


def test_a_restart_without_a_body_or_mode_resumes_at_the_failed_step(live, failed):
    api = api_for(live)
    response = api.post(f"/runs/{failed.pk}/restart", raw="")
    assert response.status_code == 200, response.content
    assert response.json()["restart_count"] == 1


def test_a_restart_from_the_start_gives_every_step_a_new_key(live, failed):
    key = StepRun.objects.get(run=failed).idempotency_key
    body = api_for(live).post(f"/runs/{failed.pk}/restart", {"mode": "from_start"}).json()
    assert (body["status"], body["restart_count"], body["path"]) == ("pending", 1, [])
    assert StepRun.objects.get(run=failed).idempotency_key == f"{key}/restart-1"
    assert body["steps"][0]["attempt_log"][0]["key"] == key


@pytest.mark.parametrize("mode", ["sideways", "", "FROM_START"])
def test_an_unknown_mode_is_a_400_naming_mode_and_the_allowed_values(live, failed, mode):
    response = api_for(live).post(f"/runs/{failed.pk}/restart", {"mode": mode})
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "mode"
    assert "from_failed_step, from_start, latest_version" in error["message"]
    assert Run.objects.get(pk=failed.pk).restart_count == 0
    assert not RunAudit.objects.exists()


def test_latest_version_of_a_deleted_workflow_is_a_clear_400(live, failed, tagging, alice):
    services.workflow_delete(workflow=tagging, deleted_by=alice)
    response = api_for(live).post(f"/runs/{failed.pk}/restart", {"mode": "latest_version"})
    assert response.status_code == 400
    error = error_of(response)
    assert (error["param"], error["code"]) == ("mode", "no_published_version")
    assert "is deleted; it has no latest version" in error["message"]


def test_latest_version_moves_the_run_to_the_published_version(live, failed, tagging, alice):
    services.workflow_update(workflow=tagging, definition={**TAG, "name": "Tag v2"})
    services.workflow_publish(workflow=tagging, published_by=alice)
    body = api_for(live).post(f"/runs/{failed.pk}/restart", {"mode": "latest_version"}).json()
    assert (body["status"], body["version"]) == ("pending", 2)


def test_resolve_needs_a_note_and_a_failed_run(live, failed, tagging):
    api = api_for(live, "account_manager")
    empty = api.post(f"/runs/{failed.pk}/resolve", {"note": " "})
    assert empty.status_code == 400 and error_of(empty)["param"] == "note"
    missing = api.post(f"/runs/{failed.pk}/resolve")
    assert missing.status_code == 400 and error_of(missing)["param"] == "note"

    body = api.post(f"/runs/{failed.pk}/resolve", {"note": "Customer deleted on purpose."}).json()
    assert body["status"] == "resolved"
    assert [(n["kind"], n["body"]) for n in body["notes"]] == [
        ("resolution", "Customer deleted on purpose.")
    ]
    assert body["notes"][0]["author"].startswith("API key account_manager key")
    assert RunAudit.objects.get(run=failed).action == RunAudit.Action.RESOLVE

    again = api.post(f"/runs/{failed.pk}/resolve", {"note": "again"})
    assert again.status_code == 400
    assert "is resolved; only failed runs can be resolved" in error_of(again)["message"]
    pending = _run(tagging, "cus_1")
    not_failed = api.post(f"/runs/{pending.pk}/resolve", {"note": "x"})
    assert "is pending" in error_of(not_failed)["message"]
    assert RunNote.objects.count() == 1


def test_resolved_runs_are_listed_with_the_resolved_filter(live, failed):
    api = api_for(live)
    api.post(f"/runs/{failed.pk}/resolve", {"note": "done"})
    listed = api.get("/runs", status="resolved").json()["data"]
    assert [r["id"] for r in listed] == [failed.pk]


def test_a_note_goes_on_any_run_and_shows_in_its_json(live, tagging):
    run = _run(tagging, "cus_1")  # pending
    api = api_for(live, "support")
    response = api.post(f"/runs/{run.pk}/notes", {"body": "Asked by the customer."})
    assert response.status_code == 200, response.content
    note = response.json()
    assert (note["object"], note["kind"], note["body"]) == (
        "run_note",
        "note",
        "Asked by the customer.",
    )
    assert api.get(f"/runs/{run.pk}").json()["notes"][0]["id"] == note["id"]

    empty = api.post(f"/runs/{run.pk}/notes", {"body": ""})
    assert empty.status_code == 400
    assert error_of(empty)["param"] == "body"
    assert "may not be empty" in error_of(empty)["message"]


@pytest.mark.parametrize(
    ("role", "note", "manage"),
    [
        ("viewer", 403, 403),
        ("support", 200, 403),
        ("account_manager", 200, 200),
        ("developer", 200, 200),
        ("admin", 200, 200),
    ],
)
def test_who_may_note_resolve_and_restart_in_a_mode(live, tagging, role, note, manage):
    api = api_for(live, role)
    first = _executed(_run(tagging, "cus_missing"))
    second = _executed(_run(tagging, "cus_missing"))
    assert api.post(f"/runs/{first.pk}/notes", {"body": "hello"}).status_code == note
    assert api.post(f"/runs/{first.pk}/resolve", {"note": "ok"}).status_code == manage
    restart = api.post(f"/runs/{second.pk}/restart", {"mode": "from_start"})
    assert restart.status_code == manage
    if manage == 403:
        assert error_of(restart)["type"] == "permission_error"
        assert Run.objects.get(pk=first.pk).status == Run.Status.FAILED


def test_another_environments_run_is_a_404_for_notes_and_resolve(live, sandbox, failed):
    api = api_for(sandbox)
    assert api.post(f"/runs/{failed.pk}/notes", {"body": "x"}).status_code == 404
    assert api.post(f"/runs/{failed.pk}/resolve", {"note": "x"}).status_code == 404
    assert not RunNote.objects.exists()
