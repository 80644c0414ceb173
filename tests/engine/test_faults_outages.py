"""Outages around real `qcluster` workers on PostgreSQL: the mail server, an HTTP target, a step
that kills its worker, and the scheduler. Each test ends with the ledger audit.

The clusters get short leases, timeouts and attempt budgets through their environment, so each
fault plays out in seconds; the engine code is the production code.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone
from django_q.models import Schedule, Task

from billing.models import Customer, Event
from tests import factories
from tests.httpserver import Reply, ScriptedServer
from tests.ledger import audit_ledger
from tests.smtp import SmtpServer, free_port
from tests.workers import qclusters, wait_for
from workflows.engine.runs import run_restart, run_start_manual
from workflows.engine.sweep import sweep
from workflows.models import Delivery, Run, StepRun
from workflows.services import schedule_name

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

FINISHED = (Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED)


def finished(*runs: Run):
    ids = [run.pk for run in runs]

    def check() -> bool:
        return Run.objects.filter(pk__in=ids, status__in=FINISHED).count() == len(ids)

    return check


def step_of(run: Run, step_id: str) -> StepRun:
    return StepRun.objects.get(run=run, step_id=step_id, iteration="")


# --- 1. the mail server down, then back --------------------------------------------------------


class SwitchableSmtp:
    """The tests' SMTP server on a fixed port that can be stopped (connection refused) and
    started again, like a mail relay being restarted."""

    def __init__(self) -> None:
        self.server = SmtpServer(host="127.0.0.1", port=free_port())
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def messages(self):
        return self.server.messages

    def start(self) -> None:
        self.controller = Controller(self.server, hostname=self.server.host, port=self.server.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_outage():
    smtp = SwitchableSmtp()
    try:
        yield smtp
    finally:
        smtp.stop()


def tell_team(name: str = "Tell finance") -> dict:
    return {
        "name": name,
        "trigger": {"type": "manual", "input": [{"name": "note", "type": "string"}]},
        "steps": [
            {
                "id": "tell",
                "type": "action",
                "action": "team.email",
                "params": {
                    "recipients": ["mona"],
                    "subject": "Note {{ trigger.input.note }}",
                    "body": "Run {{ run.id }}",
                },
            }
        ],
    }


def test_emails_wait_out_a_mail_server_outage_and_each_arrives_once(
    transactional_db, live, alice, mona, smtp_outage
):
    """The SMTP server is down (connection refused) while two runs try to e-mail; every attempt
    fails retryably and is recorded; once the server is back each e-mail arrives once.

    A worker retrying within `INLINE_RETRY_SECONDS` keeps its run, so each run has a worker."""
    workflow = factories.workflow_active(live, tell_team(), alice)
    # Test settings retry within 0.05-0.5 s, so a large attempt budget spans the outage.
    env = {"EMAIL_URL": smtp_outage.url, "BILLFLOW_STEP_MAX_ATTEMPTS": "60"}

    with qclusters(count=1, workers=2, env=env) as (cluster,):
        runs = [
            run_start_manual(workflow=workflow, input={"note": f"n{i}"}, user=alice)
            for i in range(2)
        ]

        def each_failed_twice() -> bool:
            steps = StepRun.objects.filter(run__in=runs, step_id="tell")
            return len(steps) == 2 and all(len(s.attempt_errors or []) >= 2 for s in steps)

        try:
            wait_for(each_failed_twice, timeout=30)
        except AssertionError:
            steps = list(StepRun.objects.filter(run__in=runs).values())
            raise AssertionError(f"{steps}\n{cluster.log()}") from None
        assert not finished(*runs)()
        assert smtp_outage.messages == []
        smtp_outage.start()
        try:
            wait_for(finished(*runs), timeout=30)
        except AssertionError:
            raise AssertionError(cluster.log()) from None

    for run in runs:
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED
        tell = step_of(run, "tell")
        assert tell.attempts == len(tell.attempt_errors) + 1 >= 3
        for error in tell.attempt_errors:
            assert error["type"] == "email_error"
            assert error["retryable"] is True
            assert error["message"].startswith("Could not send the e-mail: ConnectionRefusedError")
    # Exactly one message per run, each the one its step recorded.
    received = {m.message_id: m for m in smtp_outage.messages}
    assert len(smtp_outage.messages) == 2
    assert set(received) == {step_of(run, "tell").output["message_id"] for run in runs}
    assert sorted(m.message["X-Billflow-Run"] for m in received.values()) == sorted(
        str(run.pk) for run in runs
    )
    assert all(m.rcpt_tos == ["mona@example.com"] for m in received.values())
    audit_ledger(live, smtp=smtp_outage.server, expect_runs=2, expect_emails=2)


def test_an_outage_past_the_attempt_budget_fails_the_run_and_a_restart_sends_once(
    transactional_db, live, alice, mona, smtp_outage
):
    """An outage longer than the step's attempts fails the run with the last error; after the
    server is back, restarting the run sends the e-mail once."""
    workflow = factories.workflow_active(live, tell_team(), alice)
    env = {"EMAIL_URL": smtp_outage.url, "BILLFLOW_STEP_MAX_ATTEMPTS": "3"}

    with qclusters(count=1, workers=1, env=env):
        run = run_start_manual(workflow=workflow, input={"note": "late"}, user=alice)
        wait_for(finished(run), timeout=30)
        run.refresh_from_db()
        assert run.status == Run.Status.FAILED
        assert run.error["type"] == "email_error"
        assert run.error["step"] == "tell"
        assert run.error["message"].endswith("(gave up after 3 attempts)")
        assert smtp_outage.messages == []

        smtp_outage.start()
        run_restart(run=run, user=alice)
        wait_for(finished(run), timeout=30)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    tell = step_of(run, "tell")
    assert [e["type"] for e in tell.attempt_errors] == ["email_error"] * 3
    assert len(smtp_outage.messages) == 1
    assert smtp_outage.messages[0].message_id == tell.output["message_id"]
    audit_ledger(live, smtp=smtp_outage.server, expect_runs=1, expect_emails=1)


# --- 2. an HTTP target that hangs past the timeout ---------------------------------------------


def notify_partner(name: str, url: str) -> dict:
    return {
        "name": name,
        "trigger": {"type": "manual", "input": [{"name": "note", "type": "string"}]},
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": url, "body": {"note": "{{ trigger.input.note }}"}},
            }
        ],
    }


@pytest.fixture
def hung_server():
    """A target that accepts connections and never answers (until the test ends)."""
    server = ScriptedServer()
    server.hang = True
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_target_hanging_past_the_timeout_is_retried_and_never_delivered_twice(
    transactional_db, live, alice, http_server, hung_server, settings
):
    """`http.post` with a 1 s timeout against two targets: one answers 3 s late twice and then
    in time (the step succeeds on its third attempt, the answered request is the only one after
    the timeouts), the other never answers (the step fails after the configured attempts with
    a timeout error naming the host)."""
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.script(Reply(200, {"ok": True}, delay=3), Reply(200, {"ok": True}, delay=3))
    slow = factories.workflow_active(live, notify_partner("Slow", http_server.url("/slow")), alice)
    dead = factories.workflow_active(live, notify_partner("Dead", hung_server.url("/dead")), alice)
    env = {
        "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "BILLFLOW_HTTP_TIMEOUT_SECONDS": "1",
        "BILLFLOW_STEP_MAX_ATTEMPTS": "4",
    }

    with qclusters(count=1, workers=2, env=env):
        slow_run = run_start_manual(workflow=slow, input={"note": "late"}, user=alice)
        dead_run = run_start_manual(workflow=dead, input={"note": "never"}, user=alice)
        wait_for(finished(slow_run, dead_run), timeout=45)

    slow_run.refresh_from_db()
    assert slow_run.status == Run.Status.SUCCEEDED
    post = step_of(slow_run, "post")
    assert post.attempts == 3
    assert [(e["type"], e["retryable"]) for e in post.attempt_errors] == [("timeout", True)] * 2
    assert post.attempt_errors[0]["message"] == "POST to 127.0.0.1 timed out after 1 s."
    assert post.output == {"status": 200, "body": {"ok": True}}
    # Three requests, one per attempt, all with the step's key: a receiver de-duplicating on
    # Idempotency-Key applies it once; nothing was sent after the answered one.
    assert len(http_server.requests) == 3
    assert {r.headers["idempotency-key"] for r in http_server.requests} == {post.idempotency_key}
    delivery = Delivery.objects.get(idempotency_key=post.idempotency_key)
    assert delivery.status == Delivery.Status.SENT

    dead_run.refresh_from_db()
    assert dead_run.status == Run.Status.FAILED
    assert dead_run.error["type"] == "timeout"
    assert dead_run.error["step"] == "post"
    assert dead_run.error["message"] == (
        "POST to 127.0.0.1 timed out after 1 s. (gave up after 4 attempts)"
    )
    assert step_of(dead_run, "post").attempts == 4
    assert len(hung_server.requests) == 4
    audit_ledger(live, expect_failed=[dead_run], expect_runs=2)


def test_retries_that_outlast_the_lease_keep_the_run_on_one_worker(
    transactional_db, live, alice, http_server, settings
):
    """The target answers 3 s late five times (timeout 2 s) and then in time; with a 5 s lease
    the worker's retries together take longer than the lease. Each failed attempt renews the
    lease, so one worker keeps the run and succeeds on the sixth attempt, every attempt
    recorded once, while the test calls the sweep every 0.3 s to tempt a second worker."""
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.script(*[Reply(200, {"late": True}, delay=3)] * 5)
    workflow = factories.workflow_active(
        live, notify_partner("Slow", http_server.url("/slow")), alice
    )
    env = {
        "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "BILLFLOW_HTTP_TIMEOUT_SECONDS": "2",
        "BILLFLOW_STEP_MAX_ATTEMPTS": "8",
        "BILLFLOW_LEASE_SECONDS": "5",
    }

    with qclusters(count=1, workers=2, env=env):
        run = run_start_manual(workflow=workflow, input={"note": "late"}, user=alice)
        owners = set()
        deadline = time.monotonic() + 60
        while not finished(run)() and time.monotonic() < deadline:
            sweep()  # the every-minute sweep, called often: it re-enqueues expired leases
            owners.add(Run.objects.get(pk=run.pk).lease_owner)
            time.sleep(0.3)
        time.sleep(4)  # an attempt still in flight on a displaced worker would land now

    run.refresh_from_db()
    post = step_of(run, "post")
    delivery = Delivery.objects.get(idempotency_key=post.idempotency_key)
    observed = (
        f"run {run.pk} {run.status} {run.error}; step {post.status} after {post.attempts} "
        f"attempts, errors {[(e['attempt'], e['type']) for e in post.attempt_errors]}; "
        f"delivery {delivery.status}; {len(http_server.requests)} requests; owners {owners}"
    )
    assert len(owners - {""}) == 1, observed
    assert (run.status, post.status, delivery.status) == ("succeeded", "succeeded", "sent"), (
        observed
    )
    assert [e["attempt"] for e in post.attempt_errors] == [1, 2, 3, 4, 5], observed
    assert len(http_server.requests) == post.attempts == 6, observed
    audit_ledger(live, expect_runs=1)


# --- 3. a step that always kills its worker ----------------------------------------------------


def boom(customer_id: str) -> dict:
    return {
        "name": "Always crashes",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "boom",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": customer_id, "metadata": {"boom": "done"}},
            }
        ],
    }


def test_a_step_that_always_kills_its_worker_is_quarantined_and_other_runs_succeed(
    transactional_db, live, alice
):
    """The fault point `before_effect@boom` kills the worker (SIGKILL) every time it reaches the
    step; django-q respawns the worker, the lease expires and the sweep hands the run out again.
    After the configured started attempts the run fails with `attempts_exhausted`, while runs of
    another workflow, executed by the same cluster meanwhile, all succeed."""
    factories.workflow_active(live, factories.region_workflow_definition(), alice)
    victim = factories.customer(live, email="victim@example.com", address={"country": "IT"})
    crashing = factories.workflow_active(live, boom(victim.pk), alice)
    env = {
        "BILLFLOW_FAULTS": "before_effect@boom",
        "BILLFLOW_LEASE_SECONDS": "5",
        "BILLFLOW_STEP_MAX_ATTEMPTS": "3",
    }

    with qclusters(count=1, workers=2, env=env) as (cluster,):
        bad = run_start_manual(workflow=crashing, input={}, user=alice)
        countries = ["US", "DE", "BR", "CA", "FR", "JP"]
        customers = [victim] + [factories.customer(live, address={"country": c}) for c in countries]
        others = list(Run.objects.filter(event__object_id__in=[c.pk for c in customers]))
        assert len(others) == len(customers)
        # The sweep schedule runs every minute; the test calls the same sweep more often.
        deadline = time.monotonic() + 90
        while not finished(bad, *others)() and time.monotonic() < deadline:
            sweep()
            time.sleep(1)
        log = cluster.log()
    assert finished(bad, *others)(), log

    bad.refresh_from_db()
    assert bad.status == Run.Status.FAILED
    assert bad.error["type"] == "attempts_exhausted"
    assert bad.error["step"] == "boom"
    assert bad.error["message"] == (
        "Step 'boom' was started 3 times without finishing (its worker stopped each time); "
        "giving up."
    )
    assert bad.stop_reason.startswith("Step 'boom' failed: Step 'boom' was started 3 times")
    step = step_of(bad, "boom")
    assert (step.status, step.attempts) == (StepRun.Status.FAILED, 3)
    assert log.count("reincarnated worker") >= 3  # the kills were real, and survived
    assert "boom" not in Customer.objects.get(pk=victim.pk).metadata  # killed before the effect

    assert {run.status for run in Run.objects.filter(pk__in=[r.pk for r in others])} == {
        Run.Status.SUCCEEDED
    }
    locations = dict(
        Customer.objects.filter(pk__in=[c.pk for c in customers]).values_list(
            "pk", "metadata__Location"
        )
    )
    assert sorted(locations.values()) == sorted(
        ["Europe", "North America", "Europe", "Global", "North America", "Europe", "Global"]
    )
    audit_ledger(live, expect_failed=[bad], expect_runs=len(others) + 1)


# --- 4. a scheduler outage ---------------------------------------------------------------------


def every_minute(customer_id: str) -> dict:
    return {
        "name": "Minutely touch",
        "trigger": {"type": "schedule", "cron": "* * * * *"},
        "steps": [
            {
                "id": "touch",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": customer_id, "metadata": {"touched": "yes"}},
            }
        ],
    }


# django-q's scheduler runs in each cluster's guard loop, 30 s after the cluster started.
SCHEDULER_PASS_SECONDS = 30


def test_after_a_scheduler_outage_each_schedule_runs_once_even_with_two_clusters(
    transactional_db, live, alice
):
    """Simulates an outage of every cluster across five slots of an every-minute schedule by
    moving the schedule's next run five minutes into the past, then starts two clusters at once.
    Both clusters' schedulers see the overdue schedule; it runs once (`catch_up` off), not once
    per missed slot, and only one cluster creates its task; the next run is the next future
    slot."""
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, every_minute(customer.pk), alice)
    name = schedule_name(workflow.pk)
    missed_since = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    Schedule.objects.filter(name=name).update(next_run=missed_since)
    before = Event.objects.filter(type="customer.updated", object_id=customer.pk).count()

    with qclusters(count=2, workers=1) as clusters:
        try:
            wait_for(lambda: all(" running." in c.log() for c in clusters), timeout=45)
            guards_up = time.monotonic()  # each scheduler passes 30 s of guard cycles after this
            wait_for(
                lambda: Run.objects.filter(workflow=workflow).exists(),
                timeout=SCHEDULER_PASS_SECONDS + 30,
                every=0.5,
            )
        except AssertionError:
            raise AssertionError("\n".join(c.log() for c in clusters)) from None
        wait_for(finished(*Run.objects.filter(workflow=workflow)), timeout=30)
        # Let the other cluster's scheduler pass too, with slack for a loaded machine.
        time.sleep(max(0.0, guards_up + SCHEDULER_PASS_SECONDS + 6 - time.monotonic()))

    runs = list(Run.objects.filter(workflow=workflow))
    assert len(runs) == 1
    assert runs[0].status == Run.Status.SUCCEEDED
    assert runs[0].trigger_kind == Run.TriggerKind.SCHEDULE
    # The scheduler handed the task the overdue slot it was for.
    assert datetime.fromisoformat(runs[0].trigger["schedule"]["slot"]) == missed_since
    assert Task.objects.filter(group=name).count() == 1
    schedule = Schedule.objects.get(name=name)
    # The missed slots were skipped: the next run is the first slot after the one that ran.
    assert schedule.next_run > runs[0].created
    after = Event.objects.filter(type="customer.updated", object_id=customer.pk).count()
    assert after - before == 1
    audit_ledger(live, expect_runs=1)


def test_an_smtp_outage_shorter_than_the_retry_budget_is_ridden_out_with_the_default_attempts(
    transactional_db, live, alice, mona, smtp_outage
):
    """Issue 14, item 9: during a 20 s SMTP outage, runs used their 5 attempts in 4.7 s and
    failed. Scaled by a tenth (a 6 s outage budget instead of 60 s, the server down 3 s instead
    of 20 s), with the default 5 attempts, the run now waits the outage out and sends once."""
    workflow = factories.workflow_active(live, tell_team(), alice)
    env = {
        "EMAIL_URL": smtp_outage.url,
        "BILLFLOW_STEP_MAX_ATTEMPTS": "5",
        "BILLFLOW_OUTAGE_RETRY_SECONDS": "6",
    }
    with qclusters(count=1, workers=1, env=env) as (cluster,):
        run = run_start_manual(workflow=workflow, input={"note": "outage"}, user=alice)
        wait_for(lambda: StepRun.objects.filter(run=run, step_id="tell").exists(), timeout=30)
        time.sleep(3.0)  # the mail server stays down meanwhile
        assert not finished(run)(), f"gave up within the outage\n{cluster.log()}"
        smtp_outage.start()
        try:
            wait_for(finished(run), timeout=30)
        except AssertionError:
            raise AssertionError(cluster.log()) from None

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    tell = step_of(run, "tell")
    assert 2 <= tell.attempts <= 5
    assert all(e["type"] == "email_error" for e in tell.attempt_errors)
    assert len(smtp_outage.messages) == 1
    assert smtp_outage.messages[0].message_id == tell.output["message_id"]
    audit_ledger(live, smtp=smtp_outage.server, expect_runs=1, expect_emails=1)
