"""bench_sustained: a few seconds of paced load through real clusters prints every figure and
the ledger audit finds nothing lost; the audit names each kind of lost or unfinished work."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing import services as billing
from billing.models import Environment
from tests import factories
from tests.ledger import audit_ledger
from workflows.engine.executor import run_execute
from workflows.management.commands.bench_engine import DEFINITION, OPS_USER
from workflows.management.commands.bench_sustained import ledger_audit
from workflows.models import Run

WARM_UP_RUNS = 10


@pytest.mark.postgres
@pytest.mark.workers
def test_it_prints_the_figures_and_loses_nothing(transactional_db):
    out = StringIO()
    call_command(
        "bench_sustained",
        minutes=0.1,
        rate=5,
        clusters=2,
        workers=1,
        drain_minutes=1,
        workflow="three-step",
        stdout=out,
    )
    text = out.getvalue()
    assert "workflow: three-step (3 steps)" in text

    produced = int(re.search(r"overall: events produced (\d+) in", text).group(1))
    assert produced >= 15  # 6 s at 5/s, even on a busy machine
    row = r"^\s+1\*?\s+\d+\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+\d+\s+[\d.]+\s+-$"
    assert re.search(row, text, re.M)
    assert "overall: event commit -> run finished: p50 " in text
    for figure in ("p95 ", "p99 ", "runs/s while producing", "oldest pending run at most"):
        assert figure in text
    assert re.search(r"drain: backlog of \d+ runs drained in [\d.]+ s", text)
    assert "kill: none" in text
    assert re.search(r"queue: \d+ messages still waiting", text)
    for table in (
        "database",
        "workflows_run",
        "workflows_steprun",
        "billing_event",
        "django_q_ormq",
    ):
        assert re.search(rf"sizes \(MB\): {table}\s+[\d.]+\s+[\d.]+\s+[+-][\d.]+", text), table
    assert f"OK: nothing lost: {produced} events, {produced} runs" in text
    assert "FAILED" not in text

    # What the report says is what the full ledger audit finds.
    environment = Environment.objects.get(slug__startswith="sustained-")
    report = audit_ledger(
        environment,
        expect_runs=produced + WARM_UP_RUNS,
        expect_emails=produced + WARM_UP_RUNS,
    )
    assert report.statuses == {Run.Status.SUCCEEDED: produced + WARM_UP_RUNS}


def _bench_workflow(environment, user):
    factories.user(OPS_USER, "Admin")
    return factories.workflow_active(environment, DEFINITION, user)


def _run_of(customer) -> Run:
    return Run.objects.get(event__type="customer.created", event__object_id=customer.pk)


def _undispatched_customer(environment, settings):
    """A customer whose event never reached the dispatcher (as if the process died)."""
    dispatcher, subscribers = settings.BILLING_EVENT_DISPATCHER, settings.BILLING_EVENT_SUBSCRIBERS
    settings.BILLING_EVENT_DISPATCHER, settings.BILLING_EVENT_SUBSCRIBERS = None, []
    try:
        return factories.customer(environment)
    finally:
        settings.BILLING_EVENT_DISPATCHER = dispatcher
        settings.BILLING_EVENT_SUBSCRIBERS = subscribers


def test_the_audit_passes_when_every_event_ran_once(db, live, alice):
    since = timezone.now()
    workflow = _bench_workflow(live, alice)
    for customer in (factories.customer(live), factories.customer(live)):
        run_execute(run_id=_run_of(customer).pk)

    runs = Run.objects.filter(workflow=workflow)
    assert ledger_audit(environment=live, runs=runs, since=since, produced=2) == []


def test_the_audit_names_each_lost_or_unfinished_piece_of_work(db, live, alice, settings):
    since = timezone.now()
    workflow = _bench_workflow(live, alice)
    done = factories.customer(live)
    run_execute(run_id=_run_of(done).pk)
    factories.customer(live)  # its run is never executed
    _undispatched_customer(live, settings)  # its event has no run
    # An update outside the engine: an effect the ledger cannot explain.
    billing.customer_update(customer=done, changes={"metadata": {"extra": "yes"}})

    runs = Run.objects.filter(workflow=workflow)
    problems = ledger_audit(environment=live, runs=runs, since=since, produced=4)

    assert problems == [
        "4 events produced but 3 recorded",
        "1 events have no run",
        "1 runs are not terminal",
        "4 customer updates for 1 succeeded runs (expected 3 each)",
    ]
