"""Retention (workflows.operations.retention): run history older than the window is pruned in
bounded batches; failed runs nobody resolved are never touched; the run tables stay flat under
load."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone
from django_q.models import Failure, Task

from billing.models import Event, IdempotencyRecord
from tests import factories
from workflows.actions import registry
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_restart
from workflows.engine.store.forcing import force_rows
from workflows.models import Delivery, GuardrailTotal, Run, StepRun
from workflows.operations.retention import Budget, retention_days, retention_prune, runs_prune


def days_ago(n: float):
    return timezone.now() - timedelta(days=n)


def test_it_keeps_90_days_by_default():
    assert retention_days() == 90


def test_it_prunes_old_succeeded_and_canceled_runs_with_their_steps(region_workflow):
    old_ok = factories.run_row(region_workflow, status="succeeded", created=days_ago(120))
    old_canceled = factories.run_row(region_workflow, status="canceled", created=days_ago(91))
    force_rows(Delivery).create(kind="email", idempotency_key=f"{old_ok.pk}/step0/", status="sent")
    force_rows(Delivery).create(kind="email", idempotency_key="someone-else", status="sent")

    assert runs_prune() == 2

    assert not Run.objects.filter(pk__in=[old_ok.pk, old_canceled.pk]).exists()
    assert not StepRun.objects.filter(run_id__in=[old_ok.pk, old_canceled.pk]).exists()
    assert list(Delivery.objects.values_list("idempotency_key", flat=True)) == ["someone-else"]


def test_it_keeps_unresolved_failed_runs_recent_runs_and_unfinished_runs(region_workflow):
    kept = [
        factories.run_row(region_workflow, status="failed", created=days_ago(400)),
        factories.run_row(region_workflow, status="succeeded", created=days_ago(89)),
        factories.run_row(region_workflow, status="canceled", created=days_ago(1)),
        factories.run_row(region_workflow, status="pending", created=days_ago(200)),
        factories.run_row(
            region_workflow, status="running", created=days_ago(200), lease_expires_at=days_ago(199)
        ),
        # Created long ago but finished recently (e.g. restarted): measured from the finish.
        factories.run_row(
            region_workflow, status="succeeded", created=days_ago(300), finished_at=days_ago(2)
        ),
    ]

    assert runs_prune() == 0

    assert set(Run.objects.values_list("pk", flat=True)) == {r.pk for r in kept}
    assert StepRun.objects.count() == 2 * len(kept)


def test_it_prunes_a_failed_run_once_a_restart_resolved_it(live, alice):
    state = {"fail": True}
    factories.flaky_action(state)
    try:
        workflow = factories.workflow_active(live, factories.flaky_definition(), alice)
        run = factories.run_executed(workflow, customer=factories.customer(live))
        assert run.status == Run.Status.FAILED
        later = timezone.now() + timedelta(days=91)
        assert runs_prune(now=later) == 0  # failed and not resolved: kept however old

        state["fail"] = False
        run_restart(run=run)
        run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED
        assert runs_prune() == 0  # resolved today: inside the window

        assert runs_prune(now=later) == 1
        assert not Run.objects.filter(pk=run.pk).exists()
    finally:
        registry.unregister("tests.flaky")


def test_it_deletes_in_bounded_batches(region_workflow):
    for _ in range(5):
        factories.run_row(region_workflow, status="succeeded", created=days_ago(100))

    assert runs_prune(batch=2, max_batches=2) == 4
    assert Run.objects.count() == 1
    assert runs_prune(batch=2, max_batches=2) == 1
    assert runs_prune(batch=2, max_batches=2) == 0


def test_a_pass_stops_when_its_budget_is_spent_and_the_next_one_goes_on(region_workflow):
    for _ in range(5):
        factories.run_row(region_workflow, status="succeeded", created=days_ago(100))

    spent = retention_prune(budget=Budget(0), batch=2)  # one batch, then the budget is over

    assert (spent["runs"], spent["step_runs"], spent["backlog"]) == (2, 4, True)
    assert retention_prune(budget=Budget(0), batch=2)["runs"] == 2
    last = retention_prune(batch=2)  # the setting's budget: plenty for the rest
    assert (last["runs"], last["backlog"]) == (1, False)
    assert Run.objects.count() == 0


def test_run_tables_stay_flat_under_a_steady_load(region_workflow):
    """Simulated days: each day 8 runs finish and the prune runs; 3 days are kept."""
    start = timezone.now() - timedelta(days=30)
    stuck_failure = factories.run_row(region_workflow, status="failed", created=start)
    sizes = []
    for day in range(12):
        today = start + timedelta(days=day)
        for i in range(8):
            factories.run_row(
                region_workflow,
                status="canceled" if i % 4 == 0 else "succeeded",
                created=today,
                steps=3,
            )
        runs_prune(now=today + timedelta(hours=1), days=3)
        sizes.append((Run.objects.count(), StepRun.objects.count()))

    # Days 0-2 fill the window; from day 3 on, each prune removes the day that aged out.
    # Steady state: 3 days x 8 runs (3 steps each), plus the failed run nobody resolved.
    assert sizes[:3] == [(9, 26), (17, 50), (25, 74)]
    assert set(sizes[2:]) == {(25, 74)}
    assert Run.objects.filter(pk=stuck_failure.pk).exists()


def test_retention_prune_covers_idempotency_records_and_task_failures(region_workflow, live):
    IdempotencyRecord.objects.create(
        environment=live, key="old", scope="test", fingerprint="x", created=days_ago(91)
    )
    IdempotencyRecord.objects.create(
        environment=live, key="new", scope="test", fingerprint="x", created=days_ago(89)
    )
    for stopped in (days_ago(95), days_ago(3)):
        Task.objects.create(
            id=uuid.uuid4().hex,
            name=f"failed-{stopped:%j}",
            func="workflows.tasks.run_execute",
            started=stopped,
            stopped=stopped,
            success=False,
        )
    factories.run_row(region_workflow, status="succeeded", created=days_ago(95))
    for updated in (days_ago(91), days_ago(1)):
        GuardrailTotal.objects.create(
            workflow=region_workflow, scope="day", bucket=f"{updated:%F}", updated=updated
        )

    result = retention_prune()

    assert result["runs"] == 1
    assert result["idempotency_records"] == 1
    assert result["task_failures"] == 1
    assert result["guardrail_totals"] == 1
    assert GuardrailTotal.objects.get().bucket == f"{days_ago(1):%F}"
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert Failure.objects.count() == 1


def test_it_keeps_events_unless_an_event_retention_is_set(region_workflow, live, settings):
    settings.BILLING_EVENT_DISPATCHER = ""  # events stay undispatched until marked below
    factories.customer(live)
    factories.customer(live)
    Event.objects.update(created=days_ago(40), dispatched_at=days_ago(40))
    pointed_at = Event.objects.order_by("id").first()
    factories.run_row(region_workflow, status="failed", created=days_ago(40))
    force_rows(Run).update(event=pointed_at)

    assert retention_prune()["events"] == 0
    assert Event.objects.count() == 2

    never_dispatched = factories.customer(live)  # the sweep still owes it its runs
    Event.objects.filter(object_id=never_dispatched.pk).update(created=days_ago(40))

    settings.BILLFLOW = {**settings.BILLFLOW, "EVENT_RETENTION_DAYS": 30}
    assert retention_prune()["events"] == 1
    assert set(Event.objects.values_list("object_id", flat=True)) == {
        pointed_at.object_id,
        never_dispatched.pk,
    }
