"""Restart modes, resolution and every attempt's timing, in this process (`run_execute`).

A run refunds part of a charge, then e-mails a reviewer who is not on the team, so it fails at
its second step with one real effect (a refund) behind it. Each mode is restarted from there:
the refund happens once more only when the restart gives its step a new idempotency key.
The same with real workers on PostgreSQL: tests/engine/test_restart_modes_workers.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from billing.models import Refund
from tests import factories
from workflows import services
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_resolve, run_restart, run_restart_preview, run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.inspector.audit import run_note_add, run_resolve_audited
from workflows.models import RestartMode, Run, RunAudit, RunNote, StepRun
from workflows.operations.retention import retention_days, runs_prune
from workflows.services import WorkflowError, WorkflowStateError


def refund_then_tell(recipient: str = "{{ trigger.input.reviewer }}", tell_id: str = "tell"):
    return {
        "name": "Refund and tell",
        "trigger": {
            "type": "manual",
            "input": [
                {"name": "charge", "type": "string", "required": True},
                {"name": "reviewer", "type": "string", "required": True},
            ],
        },
        "steps": [
            {
                "id": "refund",
                "type": "action",
                "action": "refunds.create",
                "params": {"charge": "{{ trigger.input.charge }}", "amount": 100},
            },
            {
                "id": tell_id,
                "type": "action",
                "action": "team.email",
                "params": {
                    "recipients": [recipient],
                    "subject": "Refunded {{ trigger.input.charge }}",
                    "body": "Please check.",
                },
            },
        ],
    }


def executed(run: Run) -> Run:
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def failed(live, alice, mona):
    """A run failed at `tell` (pat is not on the team) after its refund succeeded."""
    workflow = factories.workflow_active(live, refund_then_tell(), alice)
    charge = factories.paid_charge(live, amount=5000)
    run = run_start_manual(
        workflow=workflow, input={"charge": charge.pk, "reviewer": "pat"}, user=mona
    )
    run = executed(run)
    assert run.status == Run.Status.FAILED and run.error["step"] == "tell"
    assert Refund.objects.filter(charge=charge).count() == 1
    return run, charge


def steps_of(run: Run) -> dict[str, StepRun]:
    return {s.step_id: s for s in StepRun.objects.filter(run=run)}


def publish(workflow, definition: dict, user) -> None:
    services.workflow_update(workflow=workflow, definition=definition)
    services.workflow_publish(workflow=workflow, published_by=user)


def test_from_failed_step_keeps_the_succeeded_steps_and_their_keys(failed, mona):
    run, charge = failed
    keys = {s.step_id: s.idempotency_key for s in steps_of(run).values()}
    factories.user("pat", "Account Manager")

    run = executed(run_restart(run=run, user=mona, mode=RestartMode.FROM_FAILED_STEP))

    assert run.status == Run.Status.SUCCEEDED
    steps = steps_of(run)
    assert {s.step_id: s.idempotency_key for s in steps.values()} == keys
    assert steps["refund"].attempts == 1
    assert Refund.objects.filter(charge=charge).count() == 1  # the refund happened once
    assert [m.to for m in mail.outbox] == [["pat@example.com"]]


def test_from_start_runs_every_step_again_under_new_keys(failed, mona):
    run, charge = failed
    old_key = steps_of(run)["refund"].idempotency_key
    factories.user("pat", "Account Manager")

    run = run_restart(run=run, user=mona, mode=RestartMode.FROM_START)
    assert (run.status, run.path, run.restart_count) == (Run.Status.PENDING, [], 1)
    run = executed(run)

    assert run.status == Run.Status.SUCCEEDED
    refund = steps_of(run)["refund"]
    assert refund.idempotency_key == f"{run.pk}/refund//restart-1"
    # Billing saw a new key, so it really refunded again; the earlier key stays in the log.
    assert Refund.objects.filter(charge=charge).count() == 2
    assert [(a["restart"], a["status"]) for a in refund.attempt_log] == [
        (0, "succeeded"),
        (1, "succeeded"),
    ]
    assert refund.attempt_log[0]["key"] == old_key
    assert "key" not in refund.attempt_log[1]


def test_latest_version_cures_a_failure_fixed_in_a_new_version(failed, alice, mona):
    run, charge = failed
    publish(run.workflow, refund_then_tell(recipient="mona"), alice)

    preview = {s["step_id"]: s for s in run_restart_preview(run=run, mode="latest_version")}
    assert (preview["refund"]["plan"], preview["tell"]["plan"]) == ("kept", "again")
    run = executed(run_restart(run=run, user=mona, mode=RestartMode.LATEST_VERSION))

    assert run.status == Run.Status.SUCCEEDED
    assert run.version.number == 2
    assert steps_of(run)["refund"].attempts == 1
    assert Refund.objects.filter(charge=charge).count() == 1
    assert [m.to for m in mail.outbox] == [[mona.email]]


def test_latest_version_starts_over_when_the_failed_step_is_gone(failed, alice, mona):
    run, charge = failed
    publish(run.workflow, refund_then_tell(recipient="mona", tell_id="notify"), alice)

    preview = {s["step_id"]: s for s in run_restart_preview(run=run, mode="latest_version")}
    assert preview["refund"]["plan"] == "again" and preview["refund"]["repeats_effects"]
    assert preview["notify"]["plan"] == "new" and "tell" not in preview
    run = executed(run_restart(run=run, user=mona, mode=RestartMode.LATEST_VERSION))

    assert run.status == Run.Status.SUCCEEDED
    assert Refund.objects.filter(charge=charge).count() == 2
    assert steps_of(run)["notify"].status == StepRun.Status.SUCCEEDED


def test_the_preview_says_per_mode_what_is_kept_run_again_or_new(failed):
    run, _ = failed

    def plans(mode):
        return {
            s["step_id"]: (s["plan"], s["side_effects"], s["repeats_effects"])
            for s in run_restart_preview(run=run, mode=mode)
        }

    assert plans("from_failed_step") == {
        "refund": ("kept", True, False),
        "tell": ("again", True, False),
    }
    assert plans("from_start") == {"refund": ("again", True, True), "tell": ("again", True, False)}


def test_latest_version_refuses_a_workflow_without_a_published_version(failed, alice, mona):
    run, _ = failed
    services.workflow_delete(workflow=run.workflow, deleted_by=alice)
    with pytest.raises(WorkflowStateError, match="is deleted") as error:
        run_restart(run=run, user=mona, mode=RestartMode.LATEST_VERSION)
    assert error.value.param == "mode"
    with pytest.raises(WorkflowStateError, match="is deleted"):
        run_restart_preview(run=run, mode=RestartMode.LATEST_VERSION)
    run.refresh_from_db()
    assert (run.status, run.restart_count) == (Run.Status.FAILED, 0)


def test_an_unknown_mode_is_refused_naming_the_allowed_ones(failed):
    run, _ = failed
    with pytest.raises(WorkflowStateError, match="from_failed_step, from_start, latest_version"):
        run_restart(run=run, mode="sideways")


def test_a_restarted_step_shows_every_attempt_with_its_own_timing(failed, mona):
    run, _ = failed
    first = steps_of(run)["tell"]
    assert [(a["attempt"], a["restart"], a["status"]) for a in first.attempt_log] == [
        (1, 0, "failed")
    ]
    assert first.attempt_log[0]["error"]["message"]
    factories.user("pat", "Account Manager")

    run = run_restart(run=run, user=mona)
    assert steps_of(run)["tell"].started_at is None  # the wait while failed is not the step's
    run = executed(run)

    tell = steps_of(run)["tell"]
    log = tell.attempt_log
    assert [(a["attempt"], a["restart"], a["status"]) for a in log] == [
        (1, 0, "failed"),
        (1, 1, "succeeded"),
    ]
    assert log[1]["started_at"] >= log[0]["finished_at"]
    assert tell.started_at.isoformat() == log[1]["started_at"]


def test_resolve_closes_a_failed_run_with_its_note_and_audit(failed, mona):
    run, _ = failed
    run = run_resolve_audited(run=run, note="Refunded by hand.", user=mona)

    assert run.status == Run.Status.RESOLVED and run.is_terminal
    note = RunNote.objects.get(run=run)
    assert (note.kind, note.body, note.actor) == ("resolution", "Refunded by hand.", "mona")
    audit = RunAudit.objects.get(run=run)
    assert (audit.action, audit.user, audit.note) == ("resolve", mona, "Refunded by hand.")
    with pytest.raises(WorkflowStateError, match="is resolved; only failed runs restart"):
        run_restart(run=run)


def test_a_resolved_run_ends_at_its_resolution_so_retention_keeps_it_a_full_window(failed, mona):
    run, _ = failed
    # A failure older than the retention window, resolved today.
    long_ago = timezone.now() - timedelta(days=retention_days() + 5)
    force_rows(Run.objects.filter(pk=run.pk)).update(finished_at=long_ago)
    run = run_resolve_audited(run=run, note="Refunded by hand.", user=mona)

    assert run.finished_at > timezone.now() - timedelta(minutes=1)
    assert runs_prune() == 0 and Run.objects.filter(pk=run.pk).exists()
    later = timezone.now() + timedelta(days=retention_days() + 1)
    assert runs_prune(now=later) == 1 and not Run.objects.filter(pk=run.pk).exists()


def test_resolve_refuses_an_empty_note_and_a_run_that_is_not_failed(failed, live, mona):
    run, _ = failed
    with pytest.raises(WorkflowError, match="may not be empty") as error:
        run_resolve_audited(run=run, note="  ", user=mona)
    assert error.value.param == "note"
    assert Run.objects.get(pk=run.pk).status == Run.Status.FAILED

    run_resolve(run=run)
    with pytest.raises(WorkflowStateError, match=f"Run {run.pk} is resolved; only failed"):
        run_resolve_audited(run=run, note="again", user=mona)
    # The refused resolve wrote nothing.
    assert not RunNote.objects.exists() and not RunAudit.objects.exists()


def test_a_note_goes_on_a_run_of_any_status(failed, sam):
    run, _ = failed
    note = run_note_add(run=run, body="Customer called.", user=sam)
    assert (note.kind, note.actor, Run.objects.get(pk=run.pk).status) == ("note", "sam", "failed")
    with pytest.raises(WorkflowError, match="may not be empty") as error:
        run_note_add(run=run, body="", user=sam)
    assert error.value.param == "body"


def test_latest_version_refuses_a_version_with_another_kind_of_trigger(failed, alice, mona):
    run, _ = failed
    on_event = {
        "name": "Refund and tell",
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "tell",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {"a": "b"}},
            }
        ],
    }
    publish(run.workflow, on_event, alice)
    with pytest.raises(
        WorkflowStateError, match="has an event trigger; run .* by a manual trigger"
    ):
        run_restart(run=run, user=mona, mode=RestartMode.LATEST_VERSION)
    assert Run.objects.get(pk=run.pk).status == Run.Status.FAILED
