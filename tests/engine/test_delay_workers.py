"""The delay step with real `python manage.py qcluster` processes on PostgreSQL: a waiting run
resumes on time, also after its cluster was killed while it waited, and the steps after the
delay run exactly once. The sweep is called in the wait loop, as its schedule would."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from billing.models import Customer, Event
from tests import factories
from tests.engine.test_delay_step import dunning
from tests.workers import qclusters, wait_for
from workflows.engine.runs import run_start_manual
from workflows.engine.sweep import sweep
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

DELAY_SECONDS = 3


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


def sweep_until_succeeded(run: Run, timeout: float) -> None:
    def done() -> bool:
        sweep()
        return status_of(run) == Run.Status.SUCCEEDED

    wait_for(done, timeout=timeout, every=0.2)


def updates_of(customer: Customer) -> int:
    return Event.objects.filter(type="customer.updated", object_id=customer.pk).count()


def assert_resumed_once(run: Run, customer: Customer) -> None:
    run.refresh_from_db()
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    resume_at = steps["wait"].output["resume_at"]
    assert steps["first"].attempts == 1
    assert steps["second"].attempts == 1
    assert steps["second"].started_at.isoformat() >= resume_at  # not before it was due
    assert updates_of(customer) == 2  # one update before the delay, one after
    customer.refresh_from_db()
    assert customer.metadata == {"first": "yes", "second": resume_at}


def test_a_delay_resumes_on_time_and_the_steps_after_it_run_once(transactional_db, live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, dunning({"seconds": DELAY_SECONDS}), alice)
    with qclusters(count=1, workers=1):
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        wait_for(lambda: status_of(run) == Run.Status.WAITING, timeout=30)
        run.refresh_from_db()
        assert (run.lease_owner, run.lease_expires_at) == ("", None)
        assert run.next_attempt_at > timezone.now()
        sweep_until_succeeded(run, timeout=30)
        # Resumed within the sweep's pace of its resume time, not seconds later.
        assert (timezone.now() - run.next_attempt_at).total_seconds() < 5

    assert_resumed_once(run, customer)


def test_a_waiting_run_resumes_once_after_its_cluster_was_killed(transactional_db, live, alice):
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, dunning({"seconds": DELAY_SECONDS}), alice)
    with qclusters(count=1, workers=1) as (first,):
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        wait_for(lambda: status_of(run) == Run.Status.WAITING, timeout=30)
        first.kill()  # kill -9 while the run waits: no worker holds it
    time.sleep(DELAY_SECONDS)  # the delay falls due while no cluster is up
    assert status_of(run) == Run.Status.WAITING

    with qclusters(count=1, workers=1):
        sweep_until_succeeded(run, timeout=30)
        # Later sweeps find nothing to resume: the run is not executed again.
        sweep()
        time.sleep(1)

    assert_resumed_once(run, customer)
