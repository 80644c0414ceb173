"""Machines dying mid-run: `kill -9` at the engine's fault points, a whole cluster killed with
tasks prefetched, database connections terminated mid-step. Each test ends with the ledger
audit (tests/ledger.py): every run terminal, every event with its runs, every effect once.

Real `qcluster` processes on PostgreSQL (tests/workers.py). Fault points
(workflows/engine/faults.py) are armed through the clusters' environment; with
`BILLFLOW_FAULT_DIR` each (point, run, step) kills its worker once, leaving a marker file, so a
test can count the kills and the worker that takes the run over passes the point. The short
lease lets the sweep, called here in the wait loop as its schedule would, hand a dead worker's
run to another worker within seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from tests import factories
from tests.ledger import audit_ledger
from tests.smtp import SmtpServer, free_port
from tests.workers import WORKER_APPLICATION_NAME, qclusters, wait_for
from workflows.engine.sweep import sweep
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

LEASE_SECONDS = 5
FINISHED = [Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED]

# Tag, e-mail, tag again: a billing effect before and after the e-mail.
TAG_MAIL_TAG = {
    "name": "Tag, mail, tag",
    "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.id }}",
                "metadata": {"seen": "yes"},
            },
        },
        {
            "id": "tell",
            "type": "action",
            "action": "team.email",
            "params": {
                "recipients": ["mona"],
                "subject": "New customer {{ trigger.data.object.id }}",
                "body": "{{ trigger.data.object.email }} signed up.",
            },
        },
        {
            "id": "done",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.id }}",
                "metadata": {"mailed": "{{ steps.tell.output.message_id }}"},
            },
        },
    ],
}


def cluster_env(smtp_server, **extra: str) -> dict:
    return {
        "EMAIL_URL": smtp_server.url,
        "BILLFLOW_LEASE_SECONDS": str(LEASE_SECONDS),
        **extra,
    }


def sweep_until_finished(count: int, timeout: float) -> None:
    """Run the sweep (as its schedule would) until `count` runs are finished."""
    deadline = time.monotonic() + timeout
    while Run.objects.filter(status__in=FINISHED).count() < count:
        if time.monotonic() > deadline:
            stuck = list(Run.objects.exclude(status__in=FINISHED).values("pk", "status"))
            raise AssertionError(f"gave up after {timeout}s; unfinished runs: {stuck}")
        sweep()
        time.sleep(0.5)


def make_customers(environment, count: int) -> list[str]:
    return [factories.customer(environment, email=f"c{n}@example.com").pk for n in range(count)]


def kills(fault_dir: Path) -> list[str]:
    return sorted(path.name for path in fault_dir.iterdir())


# --- kill -9 of a worker at each fault point ---------------------------------------------------

RUNS = 8
EVERY = 2  # runs with an even id are killed, the others are the control group

FAULTS = [
    # (point, step): what the worker had done when it died
    pytest.param("before_effect", "tag", id="before-billing-effect"),
    pytest.param("after_effect", "tag", id="after-billing-effect-before-step-recorded"),
    pytest.param("after_effect", "tell", id="after-email-sent-before-step-recorded"),
    pytest.param("after_commit", "tag", id="after-commit-before-next-step"),
    pytest.param("before_ack", "", id="after-run-finished-before-ack"),
]


@pytest.mark.parametrize("point,step", FAULTS)
def test_a_worker_killed_at_a_fault_point_loses_nothing_and_repeats_nothing(
    transactional_db, live, alice, mona, smtp_server, tmp_path, point, step
):
    factories.workflow_active(live, TAG_MAIL_TAG, alice)
    fault = f"{point}@{step}" if step else point
    env = cluster_env(
        smtp_server,
        BILLFLOW_FAULTS=fault,
        BILLFLOW_FAULT_DIR=str(tmp_path),
        BILLFLOW_FAULT_EVERY=str(EVERY),
    )
    with qclusters(count=1, workers=2, env=env):
        make_customers(live, RUNS)
        sweep_until_finished(RUNS, timeout=90)

    killed_runs = {r.pk for r in Run.objects.all() if r.pk % EVERY == 0}
    # Each run chosen was killed once at that point (the marker files are the kills).
    assert kills(tmp_path) == sorted(f"{point}-{run_id}-{step}-_" for run_id in killed_runs), (
        "the fault did not strike where the test meant it to"
    )
    report = audit_ledger(live, smtp=smtp_server, expect_runs=RUNS, expect_emails=RUNS)
    assert report.statuses == {Run.Status.SUCCEEDED: RUNS}

    retried = {(run_id, step_id): n for run_id, step_id, _, n in report.steps_retried}
    if point in ("before_effect", "after_effect"):
        # The killed attempt was counted; the worker that took over made the second.
        assert retried == {(run_id, step): 2 for run_id in killed_runs}
    else:
        # The step was recorded before the kill: nothing is started again.
        assert retried == {}
    assert StepRun.objects.filter(status=StepRun.Status.SUCCEEDED).count() == RUNS * 3


# --- kill -9 of a whole cluster with tasks prefetched ----------------------------------------


def prefetched_tasks() -> int:
    """Queue messages a cluster has taken (locked) but not acknowledged."""
    return OrmQ.objects.filter(lock__gt=timezone.now()).count()


def test_a_cluster_killed_with_tasks_prefetched_is_finished_by_another(
    transactional_db, live, alice, mona, smtp_server
):
    factories.workflow_active(live, TAG_MAIL_TAG, alice)
    runs = 30
    env = cluster_env(smtp_server)
    with qclusters(count=1, workers=2, env=env) as (first,):
        make_customers(live, runs)
        # Mid-flight: some runs done, and messages taken from the queue but not acknowledged.
        wait_for(
            lambda: (
                Run.objects.filter(status=Run.Status.SUCCEEDED).exists() and prefetched_tasks() >= 2
            ),
            timeout=60,
            every=0.02,
        )
        first.kill()  # kill -9 of the process group: sentinel, pusher, monitor, workers
        first.process.wait(timeout=10)
    done_at_kill = Run.objects.filter(status=Run.Status.SUCCEEDED).count()
    stranded = Run.objects.exclude(status__in=FINISHED).count()
    assert stranded > 0, "the cluster finished everything before it was killed"
    assert prefetched_tasks() >= 1  # their messages are locked by the dead cluster

    with qclusters(count=1, workers=2, env=env):
        # The locked messages would only come back after the broker's retry (minutes): the
        # sweep re-enqueues runs whose lease expired and pending runs past their grace.
        sweep_until_finished(runs, timeout=120)

    report = audit_ledger(live, smtp=smtp_server, expect_runs=runs, expect_emails=runs)
    assert report.statuses == {Run.Status.SUCCEEDED: runs}
    print(f"\n{done_at_kill} runs done at the kill, {stranded} finished by the second cluster")
    # Killed between the server's acceptance and the sent mark: the documented second copy.
    print(f"e-mails sent again after a send cut short by the kill: {report.emails_resent}")


# --- database connections terminated mid-step --------------------------------------------------


def terminate_worker_connections() -> int:
    """pg_terminate_backend every worker connection to the test database; returns how many.

    Only the clusters' connections (tests/workers.py names them through PGAPPNAME): this
    process may hold others, e.g. a live server thread's, which are not under test."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def test_runs_complete_once_when_database_connections_are_terminated_mid_step(
    transactional_db, live, alice, mona, smtp_server
):
    factories.workflow_active(live, TAG_MAIL_TAG, alice)
    # Enough runs that the workers are still busy after several rounds of terminations.
    runs = 150
    terminated = 0
    rounds_mid_run = 0
    with qclusters(count=1, workers=2, env=cluster_env(smtp_server)):
        make_customers(live, runs)
        # Terminate every worker connection, again and again, while runs are in flight.
        deadline = time.monotonic() + 60
        while rounds_mid_run < 15 and time.monotonic() < deadline:
            unfinished = Run.objects.exclude(status__in=FINISHED).count()
            if not unfinished:
                break
            if Run.objects.filter(status=Run.Status.RUNNING).exists():
                terminated += terminate_worker_connections()
                rounds_mid_run += 1
            time.sleep(0.1)
        sweep_until_finished(runs, timeout=120)

    assert rounds_mid_run >= 3 and terminated >= 3, "no connection was terminated mid-run"
    report = audit_ledger(live, smtp=smtp_server, expect_runs=runs, expect_emails=runs)
    assert report.statuses == {Run.Status.SUCCEEDED: runs}
    print(
        f"\n{terminated} connections terminated in {rounds_mid_run} rounds; "
        f"steps retried: {report.steps_retried}"
    )


@dataclass
class HeldSmtpServer(SmtpServer):
    """Holds the first message's DATA reply until `release` is set (the send is in flight)."""

    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        if not self.release.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def held_smtp_server():
    server = HeldSmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        server.release.set()
        controller.stop()


def test_an_email_is_sent_once_when_the_connection_dies_while_it_is_being_sent(
    transactional_db, live, alice, mona, held_smtp_server
):
    factories.workflow_active(live, TAG_MAIL_TAG, alice)
    with qclusters(count=1, workers=1, env=cluster_env(held_smtp_server)):
        make_customers(live, 1)
        # The worker is inside the SMTP conversation: its claim is written, its sent mark not.
        wait_for(held_smtp_server.holding.is_set, timeout=60, every=0.05)
        assert terminate_worker_connections() >= 1
        held_smtp_server.release.set()  # the server accepts the message
        sweep_until_finished(1, timeout=60)

    audit_ledger(live, smtp=held_smtp_server, expect_runs=1, expect_emails=1)
