"""The circuit breaker through the real executor (in-process), on SQLite and PostgreSQL: the
rate and the minimum decide, the deactivation happens in the failing run's transaction with
its reason, the notice names why, and activating again clears it and starts a new window."""

from __future__ import annotations

from django_q.models import OrmQ

from tests import factories
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.models import Run, Workflow
from workflows.operations.breaker import NOTIFY_TASK, deactivation_notify
from workflows.operations.notifications import subscription_set
from workflows.services import workflow_activate

BREAKER = {"failure_rate": 0.6, "min_runs": 3, "window_minutes": 30}


def ledger_sync(live, alice) -> Workflow:
    definition = {**factories.flaky_definition(), "auto_deactivate": BREAKER}
    return factories.workflow_active(live, definition, alice)


def runs(workflow, customer, alice, count: int) -> list[Run]:
    return [factories.run_executed(workflow, customer=customer, user=alice) for _ in range(count)]


def status_of(workflow) -> str:
    workflow.refresh_from_db()
    return workflow.status


def notices_queued() -> int:
    return sum(task.task.get("func") == NOTIFY_TASK for task in OrmQ.objects.all())


def test_it_waits_for_the_minimum_and_the_rate(live, alice, flaky):
    workflow = ledger_sync(live, alice)
    customer = factories.customer(live)
    flaky["fail"] = False
    runs(workflow, customer, alice, 2)  # 2 succeeded
    flaky["fail"] = True
    failed = runs(workflow, customer, alice, 2)
    # 2 of 4 failed: 50%, under the 60% of the breaker.
    assert {r.status for r in failed} == {Run.Status.FAILED}
    assert status_of(workflow) == Workflow.Status.ACTIVE
    runs(workflow, customer, alice, 1)  # 3 of 5: 60%
    assert status_of(workflow) == Workflow.Status.INACTIVE
    assert workflow.deactivated_reason == (
        "Deactivated by its circuit breaker: 3 of the 5 runs that ended in the last 30 minutes "
        "failed (60%; the limit is a failure rate of 60% over at least 3 runs)."
    )
    assert workflow.deactivated_at is not None
    assert notices_queued() == 1


def test_later_failures_do_not_deactivate_or_notify_again_and_the_notice_says_why(
    live, alice, mona, flaky, smtp_settings
):
    workflow = ledger_sync(live, alice)
    subscription_set(user=mona, environment=live, workflow=workflow, on=True)
    customer = factories.customer(live)
    started = [
        run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        for _ in range(4)
    ]
    for run in started[:3]:
        run_execute(run_id=run.pk)
    assert status_of(workflow) == Workflow.Status.INACTIVE
    # A run started before the trip fails after it: nothing more happens.
    run_execute(run_id=started[3].pk)
    assert Run.objects.get(pk=started[3].pk).status == Run.Status.FAILED
    assert notices_queued() == 1

    assert deactivation_notify(workflow.pk) == 1
    (message,) = smtp_settings.messages
    assert message.rcpt_tos == ["mona@example.com"]
    assert message.subject == (
        "[Billflow] Workflow 'Ledger sync' was deactivated: too many runs failed"
    )
    assert workflow.deactivated_reason in message.body
    assert f"/admin/workflows/{workflow.pk}/" in message.body
    # The task delivered again (its worker killed after sending) sends nothing twice.
    assert deactivation_notify(workflow.pk) == 0
    assert len(smtp_settings.messages) == 1


def test_activating_again_clears_the_reason_and_starts_a_new_window(live, alice, flaky):
    workflow = ledger_sync(live, alice)
    customer = factories.customer(live)
    runs(workflow, customer, alice, 3)
    assert status_of(workflow) == Workflow.Status.INACTIVE

    workflow_activate(workflow=workflow, activated_by=alice)
    workflow.refresh_from_db()
    assert (workflow.status, workflow.deactivated_reason) == (Workflow.Status.ACTIVE, "")
    # The three failures before the trip no longer count: two new ones are under the minimum.
    runs(workflow, customer, alice, 2)
    assert status_of(workflow) == Workflow.Status.ACTIVE
    runs(workflow, customer, alice, 1)
    assert status_of(workflow) == Workflow.Status.INACTIVE
