"""`/api/v1/runs`: list with filters, retrieve with steps, restart and cancel (audited).

Runs are made and executed by the real engine in this process (`run_execute`, what a worker's
task calls), so the API shows what the engine recorded.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from billing.api_keys import api_key_create
from billing.models import Event
from tests import factories
from tests.api_client import Api, api_for, error_of
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.models import Run, RunAudit

TAG = factories.tag_by_hand_definition()
ON_CREATE = {
    "name": "Tag new customers",
    "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {"New": "yes"}},
        }
    ],
}


def committed():
    """Run on-commit callbacks (the dispatcher) as a real commit would."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def _executed(run: Run) -> Run:
    with committed():
        run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def tagging(live):
    return factories.workflow_active(live, TAG)


def _run(workflow, customer: str) -> Run:
    return run_start_manual(workflow=workflow, input={"customer": customer})


def test_it_retrieves_a_run_with_its_steps(live, tagging):
    customer = factories.customer(live)
    run = _executed(_run(tagging, customer.id))

    body = api_for(live, "viewer").get(f"/runs/{run.pk}").json()

    assert (body["object"], body["status"], body["error"]) == ("run", "succeeded", None)
    assert (body["workflow"], body["version"], body["event"]) == (tagging.pk, 1, None)
    assert body["input"] == {"customer": customer.id}
    [step] = body["steps"]
    assert (step["step_id"], step["status"], step["attempts"], step["iteration"]) == (
        "tag",
        "succeeded",
        1,
        "",
    )
    assert step["params"] == {"customer": customer.id, "metadata": {"Source": "api"}}
    assert step["output"]["id"] == customer.id
    assert step["error"] is None


def test_it_shows_the_error_of_a_failed_run_and_its_step(live, tagging):
    run = _executed(_run(tagging, "cus_missing"))

    body = api_for(live).get(f"/runs/{run.pk}").json()

    assert body["status"] == "failed"
    assert body["error"]["step"] == "tag"
    assert "cus_missing" in body["error"]["message"]
    [step] = body["steps"]
    assert step["status"] == "failed"
    assert "cus_missing" in step["error"]["message"]


def test_it_restarts_a_failed_run_at_the_failed_step(live, tagging):
    run = _executed(_run(tagging, "cus_missing"))
    api = api_for(live, "account_manager")

    response = api.post(f"/runs/{run.pk}/restart")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["restart_count"], body["error"]) == ("pending", 1, None)
    assert body["steps"][0]["status"] == "pending"
    again = api.post(f"/runs/{run.pk}/restart")
    assert again.status_code == 400
    assert "only failed runs restart" in error_of(again)["message"]


def test_a_replayed_restart_answers_the_first_result(live, tagging):
    run = _executed(_run(tagging, "cus_missing"))
    api = api_for(live)

    first = api.post(f"/runs/{run.pk}/restart", idempotency_key="restart-1")
    again = api.post(f"/runs/{run.pk}/restart", idempotency_key="restart-1")

    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Run.objects.get(pk=run.pk).restart_count == 1


def test_it_cancels_a_pending_run(live, tagging):
    run = _run(tagging, "cus_1")
    api = api_for(live)

    body = api.post(f"/runs/{run.pk}/cancel").json()

    assert body["status"] == "canceled"
    assert body["stop_reason"]
    again = api.post(f"/runs/{run.pk}/cancel")
    assert again.status_code == 400
    assert "only pending, running or waiting runs can be canceled" in error_of(again)["message"]


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_viewers_and_support_may_read_runs_but_not_restart_or_cancel(live, tagging, role):
    failed = _executed(_run(tagging, "cus_missing"))
    pending = _run(tagging, "cus_1")
    api = api_for(live, role)

    assert api.get("/runs").status_code == 200
    assert api.get(f"/runs/{failed.pk}").status_code == 200
    restart = api.post(f"/runs/{failed.pk}/restart")
    cancel = api.post(f"/runs/{pending.pk}/cancel")

    assert restart.status_code == cancel.status_code == 403
    assert error_of(restart)["type"] == "permission_error"
    assert Run.objects.get(pk=failed.pk).status == "failed"
    assert Run.objects.get(pk=pending.pk).status == "pending"


def test_it_answers_404_for_another_environments_run(live, sandbox, tagging):
    run = _executed(_run(tagging, "cus_missing"))
    api = api_for(sandbox)

    for response in (
        api.get(f"/runs/{run.pk}"),
        api.post(f"/runs/{run.pk}/restart"),
        api.post(f"/runs/{run.pk}/cancel"),
    ):
        assert response.status_code == 404
        assert f"No such run: '{run.pk}'" == error_of(response)["message"]
    assert api.get("/runs").json()["data"] == []
    assert Run.objects.get(pk=run.pk).status == "failed"


def test_it_lists_runs_newest_first_filtered_by_workflow_status_and_time(live, tagging):
    other = factories.workflow_active(live, {**TAG, "name": "Other"})
    old = _executed(_run(tagging, "cus_missing"))
    force_rows(Run.objects.filter(pk=old.pk)).update(created=timezone.now() - timedelta(days=2))
    newer = _run(tagging, "cus_1")
    elsewhere = _run(other, "cus_1")
    api = api_for(live)

    def ids(**filters) -> list[int]:
        response = api.get("/runs", **filters)
        assert response.status_code == 200, response.json()
        return [run["id"] for run in response.json()["data"]]

    assert ids() == [elsewhere.pk, newer.pk, old.pk]
    assert ids(workflow=tagging.pk) == [newer.pk, old.pk]
    assert ids(status="failed") == [old.pk]
    yesterday = int((timezone.now() - timedelta(days=1)).timestamp())
    assert ids(**{"created[gte]": yesterday}) == [elsewhere.pk, newer.pk]
    assert ids(**{"created[lte]": yesterday}) == [old.pk]
    assert ids(limit=1, starting_after=newer.pk) == [old.pk]
    assert "steps" not in api.get("/runs").json()["data"][0]


def test_it_filters_runs_by_the_event_that_started_them(live):
    workflow = factories.workflow_active(live, ON_CREATE)
    with committed():
        factories.customer(live, email="a@example.com")
        factories.customer(live, email="b@example.com")
    runs = list(Run.objects.filter(workflow=workflow).order_by("pk"))
    assert len(runs) == 2

    body = api_for(live).get("/runs", event=runs[0].event_id).json()

    assert [run["id"] for run in body["data"]] == [runs[0].pk]
    assert body["data"][0]["event"] == runs[0].event_id
    assert body["data"][0]["trigger_kind"] == "event"


def test_it_rejects_an_unknown_status_filter(live):
    response = api_for(live).get("/runs", status="exploded")

    assert response.status_code == 400
    assert error_of(response)["param"] == "status"


def test_a_restart_resumes_at_the_failed_step_once_the_cause_is_fixed(live, settings, http_server):
    settings.BILLFLOW = {
        **settings.BILLFLOW,
        "HTTP_ALLOWED_HOSTS": ["127.0.0.1"],
        "HTTP_SIGNING_SECRET": "s",
    }
    # The receiver refuses the first call for good (400); it is fixed before the restart.
    http_server.script(400)
    customer = factories.customer(live)
    workflow = factories.workflow_active(
        live,
        {
            **TAG,
            "steps": [
                *TAG["steps"],
                {
                    "id": "notify",
                    "type": "action",
                    "action": "http.post",
                    "params": {"url": http_server.url("/hook"), "body": {"done": True}},
                },
            ],
        },
    )
    run = _executed(_run(workflow, customer.id))
    assert run.status == "failed"
    assert len(http_server.requests) == 1

    assert api_for(live).post(f"/runs/{run.pk}/restart").status_code == 200
    _executed(run)

    body = api_for(live).get(f"/runs/{run.pk}").json()
    assert (body["status"], body["restart_count"]) == ("succeeded", 1)
    steps = {step["step_id"]: step for step in body["steps"]}
    assert (steps["tag"]["status"], steps["tag"]["attempts"]) == ("succeeded", 1)
    assert (steps["notify"]["status"], steps["notify"]["output"]["status"]) == ("succeeded", 200)
    assert len(http_server.requests) == 2
    # The earlier billing change was made once: the customer's update event is not repeated.
    assert Event.objects.filter(type="customer.updated").count() == 1


def test_it_answers_405_for_a_get_on_restart_or_cancel(live, tagging):
    run = _executed(_run(tagging, "cus_missing"))
    api = api_for(live)

    for verb in ("restart", "cancel"):
        response = api.get(f"/runs/{run.pk}/{verb}")
        assert response.status_code == 405
        assert error_of(response)["code"] == "method_not_allowed"
    assert Run.objects.get(pk=run.pk).status == "failed"


# --- the audit log: API restarts and cancels name their key -------------------------------


def _key(environment, role: str = "developer", name: str = "ops bot"):
    key, raw = api_key_create(environment=environment, name=name, role=role)
    return key, Api(raw)


def test_an_api_restart_is_audited_with_its_key(live, tagging):
    run = _executed(_run(tagging, "cus_missing"))
    key, api = _key(live, "account_manager")

    assert api.post(f"/runs/{run.pk}/restart").status_code == 200

    audit = RunAudit.objects.get(run=run)
    assert (audit.action, audit.api_key, audit.user) == (RunAudit.Action.RESTART, key, None)
    assert audit.actor == f"API key ops bot ({key.prefix}…, Live)"


def test_an_api_cancel_is_audited_with_its_key_and_names_it_as_the_canceller(live, tagging):
    run = _run(tagging, "cus_1")
    key, api = _key(live)

    body = api.post(f"/runs/{run.pk}/cancel").json()

    assert body["status"] == "canceled"
    assert body["stop_reason"] == f"Canceled by API key ops bot ({key.prefix}…, Live)."
    audit = RunAudit.objects.get(run=run)
    assert (audit.action, audit.api_key, audit.user) == (RunAudit.Action.CANCEL, key, None)


def test_a_replayed_restart_is_audited_once(live, tagging):
    run = _executed(_run(tagging, "cus_missing"))
    _, api = _key(live)

    api.post(f"/runs/{run.pk}/restart", idempotency_key="r-1")
    again = api.post(f"/runs/{run.pk}/restart", idempotency_key="r-1")

    assert again["Idempotent-Replayed"] == "true"
    assert RunAudit.objects.filter(run=run).count() == 1


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_a_key_whose_role_may_not_manage_runs_writes_no_audit(live, tagging, role):
    failed = _executed(_run(tagging, "cus_missing"))
    pending = _run(tagging, "cus_1")
    _, api = _key(live, role)

    assert api.post(f"/runs/{failed.pk}/restart").status_code == 403
    assert api.post(f"/runs/{pending.pk}/cancel").status_code == 403

    assert not RunAudit.objects.exists()


def test_another_environments_key_writes_no_audit(live, sandbox, tagging):
    failed = _executed(_run(tagging, "cus_missing"))
    pending = _run(tagging, "cus_1")
    _, api = _key(sandbox)

    assert api.post(f"/runs/{failed.pk}/restart").status_code == 404
    assert api.post(f"/runs/{pending.pk}/cancel").status_code == 404

    assert not RunAudit.objects.exists()
    assert Run.objects.get(pk=pending.pk).status == "pending"


def test_a_run_in_the_wrong_state_answers_the_error_envelope_and_writes_no_audit(live, tagging):
    pending = _run(tagging, "cus_1")
    _, api = _key(live)

    restart = api.post(f"/runs/{pending.pk}/restart")
    api.post(f"/runs/{pending.pk}/cancel")
    cancel_again = api.post(f"/runs/{pending.pk}/cancel")

    assert restart.status_code == cancel_again.status_code == 400
    assert error_of(restart)["type"] == "invalid_request_error"
    assert "only failed runs restart" in error_of(restart)["message"]
    assert "only pending, running or waiting runs" in error_of(cancel_again)["message"]
    # Only the one cancel that happened is in the log.
    assert list(RunAudit.objects.values_list("action", flat=True)) == [RunAudit.Action.CANCEL]


def test_an_api_invoke_is_audited_with_its_key(live, tagging):
    key, api = _key(live)

    body = api.post(f"/workflows/{tagging.pk}/invoke", {"input": {"customer": "cus_1"}}).json()

    audit = RunAudit.objects.get(run_id=body["id"])
    assert (audit.action, audit.api_key, audit.user) == (RunAudit.Action.START, key, None)
    assert audit.actor == f"API key ops bot ({key.prefix}…, Live)"
