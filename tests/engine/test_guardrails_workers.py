"""Money guardrails and the circuit breaker with real `python manage.py qcluster` workers on
PostgreSQL: charges made by billing's services trigger refunds; two workers race for the last
unit of a day cap and money moves once; failing runs trip the breaker once, the subscriber is
told once, and later events start no runs."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing.models import Refund
from tests import factories
from tests.workers import WORKER_APPLICATION_NAME, qclusters, wait_for
from workflows.engine.guardrails import day_bucket
from workflows.models import GuardrailTotal, Run, Workflow
from workflows.operations.bench import database_url
from workflows.operations.notifications import subscription_set

pytestmark = [pytest.mark.postgres, pytest.mark.workers]


def refund_each_charge(amount: int, **settings) -> dict:
    return {
        "name": "Refund every charge",
        "trigger": {"type": "event", "event": "charge.succeeded", "accounts": "platform"},
        "steps": [
            {
                "id": "refund",
                "type": "action",
                "action": "refunds.create",
                "params": {"charge": "{{ trigger.data.object.id }}", "amount": amount},
            }
        ],
        **settings,
    }


def workers_waiting_on_a_lock(count: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock' AND state = 'active'",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0] >= count


def ended(runs: list[Run]) -> bool:
    statuses = Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", flat=True)
    return all(s in (Run.Status.SUCCEEDED, Run.Status.FAILED) for s in statuses)


@pytest.mark.timeout(180)
def test_two_workers_racing_for_the_last_unit_of_a_cap_move_money_once(
    transactional_db, live, alice
):
    definition = refund_each_charge(3000, guardrails={"max_amount_per_day": {"usd": 5000}})
    workflow = factories.workflow_active(live, definition, alice)
    day = GuardrailTotal.objects.create(
        workflow=workflow, scope="day", bucket=day_bucket(timezone.now()), currency="usd"
    )
    # A third connection holds the day's total locked, so both workers' steps reach the
    # reservation inside their transactions and wait there together; released, they race.
    with psycopg.connect(database_url(), autocommit=False) as holder:
        holder.execute(
            f"SELECT 1 FROM {GuardrailTotal._meta.db_table} WHERE id = %s FOR UPDATE", [day.pk]
        )
        with qclusters(count=1, workers=2):
            with transaction.atomic():  # both events, and so both runs, commit at once
                charges = [factories.paid_charge(live, amount=10000) for _ in range(2)]
            runs = list(Run.objects.filter(workflow=workflow))
            assert len(runs) == 2
            wait_for(lambda: workers_waiting_on_a_lock(2), timeout=60)
            holder.rollback()  # release the lock: the race starts
            wait_for(lambda: ended(runs), timeout=60)

    refunds = list(Refund.objects.filter(charge__in=charges))
    assert [r.amount for r in refunds] == [3000]
    runs = {r.status: r for r in Run.objects.filter(workflow=workflow)}
    assert set(runs) == {Run.Status.SUCCEEDED, Run.Status.FAILED}
    error = runs[Run.Status.FAILED].error
    assert error["type"] == "guardrail"
    assert error["message"] == (
        "Guardrail max_amount_per_day (50.00 USD): step 'refund' (refunds.create) would move "
        "30.00 USD, bringing today's (UTC) total from 30.00 USD to 60.00 USD. Nothing was moved."
    )
    day.refresh_from_db()
    assert day.total == 3000


@pytest.mark.timeout(180)
def test_failing_runs_trip_the_breaker_once_and_the_subscriber_is_told_once(
    transactional_db, live, alice, mona, smtp_server
):
    # Every refund asks for more than its charge holds: each run fails in billing.
    definition = refund_each_charge(
        5000, auto_deactivate={"failure_rate": 0.5, "min_runs": 3, "window_minutes": 60}
    )
    workflow = factories.workflow_active(live, definition, alice)
    subscription_set(user=mona, environment=live, workflow=workflow, on=True)
    with qclusters(count=1, workers=2, env={"EMAIL_URL": smtp_server.url}):
        with transaction.atomic():
            for _ in range(4):
                factories.paid_charge(live, amount=1000)
        runs = list(Run.objects.filter(workflow=workflow))
        wait_for(lambda: ended(runs), timeout=60)

        def told() -> list:
            return [m for m in smtp_server.messages if "was deactivated" in m.subject]

        wait_for(told, timeout=60)
        workflow.refresh_from_db()
        assert workflow.status == Workflow.Status.INACTIVE
        # Later events start no runs.
        factories.paid_charge(live, amount=1000)
        assert Run.objects.filter(workflow=workflow).count() == 4

    notices = told()
    assert len(notices) == 1
    assert notices[0].rcpt_tos == ["mona@example.com"]
    assert "Refund every charge" in notices[0].subject
    assert "failed (" in notices[0].body and "last 60 minutes" in notices[0].body
    assert f"/admin/workflows/{workflow.pk}/" in notices[0].body
    assert workflow.deactivated_reason.startswith("Deactivated by its circuit breaker: ")
    assert "runs that ended in the last 60 minutes failed" in workflow.deactivated_reason
    assert Run.objects.filter(workflow=workflow, status=Run.Status.FAILED).count() >= 3
