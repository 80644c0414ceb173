"""The engine with real `python manage.py qcluster` processes on PostgreSQL.

Each test commits its data for real (`transactional_db`), starts its clusters against the test
database, waits with a bound, and stops every process it started (also on failure).
"""

from __future__ import annotations

import time

import pytest

from billing.models import Customer, Event, Subscription
from tests import factories
from tests.engine.test_engine_executor import (
    BIG_PAYMENTS,
    FALSE_CONDITION,
    REGION,
    loop_definition,
    notify_partner,
    subscriptions_for,
)
from tests.workers import qclusters, wait_for
from workflows.engine.queue import run_enqueue
from workflows.engine.runs import run_start_manual
from workflows.engine.sweep import sweep
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

FINISHED = [Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED]


def all_finished(count: int):
    def check() -> bool:
        return Run.objects.filter(status__in=FINISHED).count() >= count

    return check


def test_it_runs_the_seed_scenarios_end_to_end(transactional_db, live, alice, mona):
    factories.workflow_active(live, REGION, alice)
    factories.workflow_active(live, FALSE_CONDITION, alice)
    factories.workflow_active(live, BIG_PAYMENTS, alice)
    with qclusters(count=1, workers=2):
        us = factories.customer(live, address={"country": "US"})
        de = factories.customer(live, address={"country": "DE"})
        vip = factories.customer(live, metadata={"vip": "yes"})
        factories.paid_charge(live, amount=150000, currency="usd", customer=us)
        # 3 customers x 2 workflows + 1 large payment
        wait_for(all_finished(7), timeout=45)

    runs = list(Run.objects.all())
    assert len(runs) == 7
    assert {r.status for r in runs} == {Run.Status.SUCCEEDED}
    locations = {c.pk: c.metadata.get("Location") for c in Customer.objects.all()}
    assert locations[us.pk] == "North America"
    assert locations[de.pk] == "Europe"
    assert locations[vip.pk] == "Global"
    assert Customer.objects.get(pk=vip.pk).metadata["welcomed"] == "yes"
    assert "welcomed" not in Customer.objects.get(pk=us.pk).metadata
    stopped = Run.objects.get(event__object_id=us.pk, workflow__name="Only VIPs")
    assert "is_vip" in stopped.stop_reason
    # The e-mail went out from the worker, once, with the dynamic fields filled in.
    email = StepRun.objects.get(step_id="tell_finance")
    assert email.status == StepRun.Status.SUCCEEDED
    assert email.output["recipients"] == ["mona@example.com"]
    assert email.attempts == 1


def test_it_retries_a_503_twice_then_succeeds(transactional_db, live, alice, http_server, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.script(503, 503, 200)
    workflow = factories.workflow_active(live, notify_partner(http_server.url("/hook")), alice)
    env = {"BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1"}
    with qclusters(count=1, workers=1, env=env):
        run = run_start_manual(workflow=workflow, input={"note": "hi"}, user=alice)
        wait_for(all_finished(1), timeout=30)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    post = StepRun.objects.get(run=run, step_id="post")
    assert post.attempts == 3
    assert [e["attempt"] for e in post.attempt_errors] == [1, 2]
    assert [r.path for r in http_server.requests] == ["/hook"] * 3


def test_another_worker_finishes_a_run_after_kill_9_with_every_effect_once(
    transactional_db, live, alice
):
    customer = factories.customer(live)
    subscriptions = subscriptions_for(live, customer, 20)
    workflow = factories.workflow_active(live, loop_definition(page_size=100), alice)
    env = {"BILLFLOW_LEASE_SECONDS": "5"}
    before = Event.objects.filter(type="customer.subscription.updated").count()

    with qclusters(count=1, workers=1, env=env) as (first,):
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        # Mid-run: some loop iterations done, not all.
        wait_for(
            lambda: (
                StepRun.objects.filter(
                    run=run, step_id="mark", status=StepRun.Status.SUCCEEDED
                ).count()
                >= 3
            ),
            timeout=30,
            every=0.01,
        )
        first.kill()  # kill -9, every process of that cluster
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    done_at_kill = StepRun.objects.filter(run=run, status=StepRun.Status.SUCCEEDED).count()
    assert done_at_kill < 21

    with qclusters(count=1, workers=1, env=env):
        # The queue message died with the worker; the sweep finds the expired lease.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            sweep()
            run.refresh_from_db()
            if run.status in FINISHED:
                break
            time.sleep(0.5)

    assert run.status == Run.Status.SUCCEEDED
    marks = list(StepRun.objects.filter(run=run, step_id="mark"))
    assert len(marks) == 20
    assert all(m.status == StepRun.Status.SUCCEEDED for m in marks)
    # Only the iteration in flight at the kill started twice.
    assert sum(m.attempts for m in marks) <= 21
    updated = Event.objects.filter(type="customer.subscription.updated")
    assert updated.count() - before == 20
    assert sorted(updated.filter(caused_by_run_id=run.pk).values_list("object_id", flat=True)) == (
        sorted(s.pk for s in subscriptions)
    )
    assert all(s.metadata["reviewed"] == "yes" for s in Subscription.objects.all())


THREE_TAGS = {
    "name": "Three tags",
    "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
    "steps": [
        {
            "id": name,
            "type": "action",
            "action": "customers.update",
            "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {name: "yes"}},
        }
        for name in ("a", "b", "c")
    ],
}


def test_two_workers_on_the_same_runs_never_execute_a_step_twice(transactional_db, live, alice):
    factories.workflow_active(live, THREE_TAGS, alice)
    with qclusters(count=2, workers=2):
        customers = [factories.customer(live) for _ in range(15)]
        # Every run is announced three more times: all four workers race for it.
        for run in Run.objects.all():
            run_enqueue(run.pk)
            run_enqueue(run.pk)
            run_enqueue(run.pk)
        sweep()
        wait_for(all_finished(15), timeout=45)

    assert Run.objects.filter(status=Run.Status.SUCCEEDED).count() == 15
    steps = list(StepRun.objects.all())
    assert len(steps) == 45
    assert {s.attempts for s in steps} == {1}
    for customer in customers:
        updates = Event.objects.filter(type="customer.updated", object_id=customer.pk)
        assert updates.count() == 3


def test_a_restarted_run_resumes_at_the_failed_step_with_earlier_effects_once(
    transactional_db, live, alice, mona
):
    from tests.engine.test_engine_runs import MANUAL
    from workflows.engine.runs import run_restart
    from workflows.models import Delivery

    definition = {
        **MANUAL,
        "trigger": {
            "type": "manual",
            "input": [
                {"name": "customer", "type": "string", "required": True},
                {"name": "reviewer", "type": "string", "required": True},
            ],
        },
    }
    workflow = factories.workflow_active(live, definition, alice)
    customer = factories.customer(live)
    with qclusters(count=1, workers=1):
        run = run_start_manual(
            workflow=workflow, input={"customer": customer.pk, "reviewer": "pat"}, user=mona
        )
        wait_for(all_finished(1), timeout=30)
        run.refresh_from_db()
        assert run.status == Run.Status.FAILED
        assert run.error["step"] == "tell"

        factories.user("pat", "Account Manager")  # the cause is fixed
        run_restart(run=run, user=mona)
        wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=FINISHED).exists(), 30)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert steps["flag"].attempts == 1
    assert steps["tell"].output["recipients"] == ["pat@example.com"]
    assert Event.objects.filter(type="customer.updated", object_id=customer.pk).count() == 1
    assert Delivery.objects.filter(kind="email", status="sent").count() == 1
