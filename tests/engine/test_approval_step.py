"""The approval step on one database (SQLite or PostgreSQL): its validation, the walk through
the executor (waiting, approved, rejected and restarted, timed out either way, cancel), who
may decide (page and API, per role), the e-mail to the approvers, the builder's test run and
the run page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing.models import Customer
from tests import factories
from tests.api_client import api_for, error_of
from tests.engine.test_engine_executor import committed
from workflows.builder.test_run import workflow_test_run
from workflows.definition.model import parse
from workflows.definition.validation import validate_definition
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_cancel, run_restart, run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.models import Approval, Run, RunAudit, StepRun


def approving(**approval) -> dict:
    """Mark the customer, ask for approval, mark again with the decision."""
    step = {
        "id": "ok",
        "type": "approval",
        "approvers": ["mona"],
        "message": "Refund {{ trigger.input.customer }}?",
        "timeout_hours": 48,
        "on_timeout": "reject",
        **approval,
    }
    return {
        "name": "Refund with approval",
        "trigger": {
            "type": "manual",
            "input": [{"name": "customer", "type": "string", "required": True}],
        },
        "steps": [
            {
                "id": "first",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"first": "yes"},
                },
            },
            step,
            {
                "id": "second",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"decision": "{{ steps.ok.output.decision }}"},
                },
            },
        ],
    }


def errors_of(**approval) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in validate_definition(approving(**approval))]


def start(live, alice, **approval) -> tuple[Run, Customer]:
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, approving(**approval), alice)
    with committed():
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    return run, customer


def waiting(live, alice, **approval) -> tuple[Run, Customer]:
    run, customer = start(live, alice, **approval)
    assert run_execute(run_id=run.pk) == Run.Status.WAITING
    run.refresh_from_db()
    return run, customer


def decide(run: Run, user, decision: str, note: str = ""):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.post(reverse("runs:decide", args=[run.pk]), {"decision": decision, "note": note})


# --- validation -------------------------------------------------------------------------------


def test_an_approval_step_round_trips_and_validates(mona):
    definition = approving(timeout_hours=0.5, on_timeout="approve")
    assert parse(definition).to_json() == definition
    assert validate_definition(definition) == []
    assert errors_of(approvers=["Account Manager", "developer"]) == []


def test_validation_names_each_field_and_rule(mona, sam):
    assert errors_of(approvers=[]) == [
        (
            "steps[1].approvers",
            "An approval step needs at least one approver (a user name or a role)",
        )
    ]
    (field, message), *_ = errors_of(approvers=["nobody"])
    assert field == "steps[1].approvers[0]"
    assert "'nobody' is neither an active back-office user nor a role" in message
    assert errors_of(approvers=["sam"]) == [
        ("steps[1].approvers[0]", "'sam' cannot approve: deciding needs Account Manager or above")
    ]
    assert errors_of(timeout_hours=0) == [
        ("steps[1].timeout_hours", "Must be a positive number of hours")
    ]
    assert errors_of(timeout_hours=721) == [
        ("steps[1].timeout_hours", "Must be at most 720 (30 days)")
    ]
    assert errors_of(on_timeout="maybe") == [
        ("steps[1].on_timeout", "Must be 'reject' or 'approve': what a timeout decides")
    ]
    (field, message), *_ = errors_of(message="{{ steps.nowhere.output.x }}")
    assert (field, "nowhere" in message) == ("steps[1].message", True)


# --- the executor -----------------------------------------------------------------------------


def test_a_run_waits_for_approval_and_goes_on_once_approved(live, alice, mona, client):
    run, customer = waiting(live, alice)
    assert (run.lease_owner, run.lease_expires_at) == ("", None)
    request = Approval.objects.get(run=run)
    assert request.message == f"Refund {customer.pk}?"
    assert run.next_attempt_at == request.due_at
    assert timedelta(hours=47.9) < request.due_at - timezone.now() <= timedelta(hours=48)
    assert StepRun.objects.get(run=run, step_id="ok").output["waiting_for"] == "approval"
    # One e-mail to the approver, with the message and a link to the run page.
    assert [m.to for m in mail.outbox] == [[mona.email]]
    assert f"Refund {customer.pk}?" in mail.outbox[0].body
    assert reverse("runs:detail", args=[run.pk]) in mail.outbox[0].body

    # A duplicate wake-up before any decision waits again, sending nothing more.
    force_rows(Run.objects.filter(pk=run.pk)).update(next_attempt_at=timezone.now())
    assert run_execute(run_id=run.pk) == Run.Status.WAITING
    assert len(mail.outbox) == 1

    # The run page says what it waits for and shows the approver the buttons.
    client.force_login(mona)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "waiting for approval by mona, times out at" in page
    assert "(then reject)" in page
    assert 'id="approve-button"' in page

    with committed():
        response = decide(run, mona, "approve", "Fine by me")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert steps["first"].attempts == 1
    assert steps["second"].attempts == 1
    assert steps["ok"].output["decision"] == "approved"
    assert steps["ok"].output["by"] == "mona"
    assert steps["ok"].output["note"] == "Fine by me"
    customer.refresh_from_db()
    assert customer.metadata == {"first": "yes", "decision": "approved"}
    audit = RunAudit.objects.get(run=run, action=RunAudit.Action.APPROVE)
    assert (audit.user, audit.note) == (mona, "Fine by me")
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Decision: <strong>approved</strong> by mona" in page


def test_a_rejection_fails_the_run_and_a_restart_asks_again(live, alice, mona):
    run, customer = waiting(live, alice)
    with committed():
        decide(run, mona, "reject", "Too much")
    assert run_execute(run_id=run.pk) == Run.Status.FAILED
    run.refresh_from_db()
    assert run.error["type"] == "approval_rejected"
    assert run.error["step"] == "ok"
    assert "rejected by mona at" in run.error["message"]
    assert run.error["message"].endswith(": Too much")
    assert not StepRun.objects.filter(run=run, step_id="second").exists()

    with committed():
        run_restart(run=run, user=alice)
    assert run_execute(run_id=run.pk) == Run.Status.WAITING
    assert Approval.objects.filter(run=run).count() == 2  # a new request for the restart
    assert len(mail.outbox) == 2
    run.refresh_from_db()
    with committed():
        decide(run, mona, "approve")
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    assert StepRun.objects.get(run=run, step_id="first").attempts == 1


@pytest.mark.parametrize("on_timeout", ["approve", "reject"])
def test_a_timeout_applies_on_timeout(live, alice, mona, on_timeout):
    run, _customer = waiting(live, alice, timeout_hours=0.001, on_timeout=on_timeout)
    request = Approval.objects.get(run=run)
    assert (request.due_at - request.created).total_seconds() == pytest.approx(3.6, abs=0.5)
    due = timezone.now() - timedelta(seconds=1)
    Approval.objects.filter(pk=request.pk).update(due_at=due)
    force_rows(Run.objects.filter(pk=run.pk)).update(next_attempt_at=due)

    status = run_execute(run_id=run.pk)
    request.refresh_from_db()
    assert request.decision == Approval.Decision.TIMED_OUT
    if on_timeout == "approve":
        assert status == Run.Status.SUCCEEDED
        output = StepRun.objects.get(run=run, step_id="ok").output
        assert (output["decision"], output["timed_out"]) == ("approved", True)
    else:
        assert status == Run.Status.FAILED
        run.refresh_from_db()
        assert run.error["type"] == "approval_rejected"
        assert "rejected on timeout" in run.error["message"]
    # Deciding after the timeout is refused.
    response = decide(run, mona, "approve")
    assert Approval.objects.get(pk=request.pk).decision == Approval.Decision.TIMED_OUT
    assert response.status_code == 302


def test_a_run_waiting_for_approval_can_be_canceled_and_then_not_decided(live, alice, mona):
    run, _customer = waiting(live, alice, approvers=["Account Manager"])
    run_cancel(run=run, user=alice)
    api = api_for(live, "account_manager")
    response = api.post(f"/runs/{run.pk}/approve", {})
    assert response.status_code == 409
    assert "only a run waiting for its approval can be decided" in error_of(response)["message"]
    assert Approval.objects.get(run=run).decision == Approval.Decision.PENDING


# --- who may decide ---------------------------------------------------------------------------


def test_the_api_decides_by_role_once_and_refuses_others(live, alice, mona):
    run, _customer = waiting(live, alice, approvers=["Account Manager"])
    assert api_for(live, "support").post(f"/runs/{run.pk}/approve", {}).status_code == 403
    body = api_for(live, "account_manager").get(f"/runs/{run.pk}").json()
    assert body["waiting"]["for"] == "approval"
    assert body["waiting"]["approval"]["approvers"] == ["Account Manager"]
    assert body["waiting"]["approval"]["on_timeout"] == "reject"

    api = api_for(live, "account_manager")
    refused = api.post(f"/runs/{run.pk}/reject", {})
    assert refused.status_code == 400
    assert error_of(refused)["param"] == "note"
    with committed():
        done = api.post(f"/runs/{run.pk}/approve", {"note": "ok"})
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "pending"
    again = api_for(live, "admin").post(f"/runs/{run.pk}/reject", {"note": "no"})
    assert again.status_code == 409
    assert "Already approved by API key account_manager key" in error_of(again)["message"]


def test_a_key_whose_role_is_no_approver_gets_403(live, alice, mona):
    run, _customer = waiting(live, alice, approvers=["mona"])
    response = api_for(live, "admin").post(f"/runs/{run.pk}/approve", {})
    assert response.status_code == 403
    assert "none of the approvers (mona)" in error_of(response)["message"]


@pytest.mark.parametrize(
    "username, status, decided",
    [("vic", 403, False), ("sam", 403, False), ("dave", 302, False), ("mona", 302, True)],
)
def test_the_run_page_lets_only_the_approvers_decide(
    live, alice, cast, username, status, decided, client
):
    run, _customer = waiting(live, alice)
    client.force_login(cast[username])
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert ('id="approve-button"' in page) == decided
    with committed():
        response = decide(run, cast[username], "approve")
    assert response.status_code == status
    request = Approval.objects.get(run=run)
    assert (request.decision == Approval.Decision.APPROVED) == decided


# --- the builder's test run -------------------------------------------------------------------


def test_the_builder_test_run_records_whom_it_would_ask_and_goes_on(live, mona):
    customer = factories.customer(live)
    result = workflow_test_run(
        workflow_id=None,
        definition=approving(),
        trigger={"input": {"customer": customer.pk}},
        environment=live,
    )
    assert result.status == "succeeded"
    note = result.steps["ok"]["note"]
    assert note.startswith("Not waited: a real run would ask mona to approve (48 h, then reject)")
    assert result.steps["ok"]["output"]["decision"] == "approved"
    assert result.steps["second"]["status"] == "simulated"
    assert not Approval.objects.exists()
