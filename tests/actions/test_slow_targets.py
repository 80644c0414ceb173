"""No second send while the first is in flight: targets that trickle their answers.

An HTTP target that sends its status and headers at once and then one byte every few seconds,
or a mail server that answers DATA one line at a time, never trips a per-read timeout. Before
the fix the send outlasted its run's lease, the sweep handed the run to a second worker, and
that worker took over the delivery claim and sent the same effect again while the first send
was still in flight. Now a send's time limit covers the whole call, the lease is held while the
action runs, and a delivery claim is taken over only by the worker holding the run's lease.

The first tests call the actions in this process (SQLite and PostgreSQL); the last starts real
`qcluster` workers (PostgreSQL) with a 6 s lease and 3 s send timeouts against targets that
trickle for 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from tests import factories
from tests.httpserver import Reply
from tests.ledger import audit_ledger
from tests.smtp import SmtpServer, free_port
from tests.workers import qclusters
from workflows.actions import registry
from workflows.actions.delivery import delivery_send_once
from workflows.actions.http_post import http_post_send
from workflows.actions.registry import Action, ActionContext, ActionError
from workflows.actions.team_email import execute as team_email_execute
from workflows.actions.team_email import message_id_for
from workflows.engine.executor import run_execute
from workflows.engine.leases import lease_claim, lease_held
from workflows.engine.runs import run_start_manual
from workflows.engine.store.forcing import force_rows
from workflows.engine.sweep import sweep
from workflows.models import Delivery, Run, StepRun

FINISHED = (Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED)


@dataclass
class TricklingSmtpServer(SmtpServer):
    """Takes the message, then answers DATA one continuation line ("250-…") every `every`
    seconds for `trickle_for` seconds before the final "250": the client never waits a whole
    second for a byte, so no per-read timeout ends the conversation."""

    every: float = 1.0
    trickle_for: float = 30.0
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        status = await super().handle_DATA(server, session, envelope)  # the message is in
        ends = time.monotonic() + self.trickle_for
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < ends and not self.released.is_set():
                await asyncio.sleep(self.every)
                await server.push("250-still thinking")
        return status


@pytest.fixture
def trickling_smtp():
    server = TricklingSmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        server.released.set()
        controller.stop()


def _ctx(environment, key: str) -> ActionContext:
    return ActionContext(environment=environment, idempotency_key=key, run_id=41)


# --- one send's time limit is its total time --------------------------------------------------


def test_a_post_whose_answer_trickles_past_the_timeout_ends_at_the_timeout_and_is_not_retried(
    http_server,
):
    """Status and headers at once, then a byte every 0.3 s for 9 s: the 1 s limit ends the
    call after about 1 s, and since the target has the request the error is not retryable."""
    http_server.script(Reply(200, "x" * 30, trickle=0.3))

    started = time.monotonic()
    with pytest.raises(ActionError) as caught:
        http_post_send(
            url=http_server.url("/hook"),
            payload={"n": 1},
            idempotency_key="211/hook/",
            allowed_hosts=["127.0.0.1"],
            timeout=1,
            secret="s3cret",
        )
    elapsed = time.monotonic() - started

    assert elapsed < 2.5, f"the call took {elapsed:.1f} s with a 1 s limit"
    assert caught.value.type == "timeout"
    assert caught.value.retryable is False
    assert caught.value.message.startswith(
        "POST to 127.0.0.1 timed out after 1 s: the target answered 200 but did not finish"
    )
    assert "restart the run to send it again" in caught.value.message
    assert len(http_server.requests) == 1


def test_a_post_without_any_answer_by_the_timeout_stays_a_retryable_timeout(http_server):
    """A target silent past the limit gave no sign of having the request: as before, a
    retryable `timeout` (a retry carries the same Idempotency-Key)."""
    http_server.script(Reply(200, {"ok": True}, delay=3))

    with pytest.raises(ActionError) as caught:
        http_post_send(
            url=http_server.url("/hook"),
            payload={},
            idempotency_key="212/hook/",
            allowed_hosts=["127.0.0.1"],
            timeout=1,
            secret="s3cret",
        )

    assert (caught.value.type, caught.value.retryable) == ("timeout", True)
    assert caught.value.message == "POST to 127.0.0.1 timed out after 1 s."


def test_a_post_whose_answer_trickles_in_time_succeeds(http_server):
    http_server.script(Reply(200, "abcd", trickle=0.1))

    output = http_post_send(
        url=http_server.url("/hook"),
        payload={},
        idempotency_key="213/hook/",
        allowed_hosts=["127.0.0.1"],
        timeout=3,
        secret="s3cret",
    )

    assert output == {"status": 200, "body": "abcd"}


def test_an_smtp_answer_to_data_trickling_past_the_timeout_ends_at_the_timeout_and_is_not_retried(
    live, mona, trickling_smtp, settings
):
    """The server has the whole message and answers DATA a line every 0.3 s for 30 s: the 1 s
    limit ends the conversation, and the step fails for good instead of sending a copy."""
    trickling_smtp.every = 0.3
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = trickling_smtp.host, trickling_smtp.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1

    started = time.monotonic()
    with pytest.raises(ActionError) as caught:
        team_email_execute(_ctx(live, "41/tell/"), {"recipients": ["mona"], "subject": "Hi"})
    elapsed = time.monotonic() - started

    assert elapsed < 2.5, f"the send took {elapsed:.1f} s with a 1 s limit"
    assert (caught.value.type, caught.value.retryable) == ("timeout", False)
    assert caught.value.message.startswith(
        "The mail server did not answer within 1 s after the whole message was sent"
    )
    assert [m.message_id for m in trickling_smtp.messages] == [message_id_for("41/tell/")]
    delivery = Delivery.objects.get(idempotency_key="41/tell/")
    assert (delivery.status, delivery.attempts) == (Delivery.Status.FAILED, 1)


@dataclass
class SlowRcptSmtpServer(SmtpServer):
    """Answers RCPT one continuation line every 0.3 s for 30 s: the message is never sent."""

    released: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                if self.released.is_set():
                    break
                await asyncio.sleep(0.3)
                await server.push("250-looking it up")
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_an_smtp_conversation_cut_before_the_message_was_sent_stays_retryable(live, mona, settings):
    """The time limit ends a conversation stuck before DATA: the server cannot have the
    message, so this is the usual retryable `email_error`, and nothing was received."""
    server = SlowRcptSmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.host, server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    try:
        started = time.monotonic()
        with pytest.raises(ActionError) as caught:
            team_email_execute(_ctx(live, "42/tell/"), {"recipients": ["mona"], "subject": "Hi"})
        elapsed = time.monotonic() - started
    finally:
        server.released.set()
        controller.stop()

    assert elapsed < 2.5, f"the send took {elapsed:.1f} s with a 1 s limit"
    assert (caught.value.type, caught.value.retryable) == ("email_error", True)
    assert caught.value.message.startswith(
        "Could not send the e-mail: the mail server did not finish within 1 s"
    )
    assert server.messages == []


# --- a delivery claim is taken over only under the run's lease --------------------------------


def _manual_run(live, alice) -> Run:
    definition = {
        "name": "Partner call",
        "trigger": {"type": "manual", "input": []},
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": "https://partner.example.com/hook"},
            }
        ],
    }
    workflow = factories.workflow_active(live, definition, alice)
    return run_start_manual(workflow=workflow, input={}, user=alice)


def test_a_sending_claim_is_taken_over_only_by_the_worker_holding_the_run_s_lease(
    live, alice, settings
):
    """Worker A claimed the send long ago (older than any in-progress window) and still holds
    the run's lease: worker B, whose lease was taken over, sends nothing. Once A's lease has
    expired and B claimed the run, B takes the send over (A is gone: the crash recovery)."""
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["partner.example.com"]}
    run = _manual_run(live, alice)
    assert lease_claim(run_id=run.pk, owner="worker-a") is not None
    key = f"{run.pk}/post/"
    force_rows(Delivery).create(
        kind=Delivery.Kind.HTTP, idempotency_key=key, claimed_at=timezone.now() - timedelta(hours=1)
    )
    calls: list[str] = []

    def send() -> dict:
        calls.append("sent")
        return {"status": 200}

    def send_as(owner: str) -> dict:
        with lease_held(run_id=run.pk, owner=owner, heartbeat=False):
            return delivery_send_once(
                kind=Delivery.Kind.HTTP, idempotency_key=key, send=send, in_progress_seconds=20
            )

    with pytest.raises(ActionError) as caught:
        send_as("worker-b")
    assert (caught.value.type, caught.value.retryable) == ("lease_lost", True)
    assert calls == []
    delivery = Delivery.objects.get(idempotency_key=key)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENDING, 1)

    force_rows(Run.objects.filter(pk=run.pk)).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert lease_claim(run_id=run.pk, owner="worker-b") is not None
    assert send_as("worker-b") == {"status": 200}
    assert calls == ["sent"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 2)


# --- the lease is held while the action runs ----------------------------------------------------


@pytest.mark.postgres
def test_the_lease_is_held_while_a_slow_action_runs(transactional_db, live, alice, settings):
    """A non-transactional action that takes 3 s under a 2 s lease (one a DNS lookup or a custom
    action could take, which no send limit cuts short): the heartbeat renews the lease, so a
    rival trying to claim the run every 0.1 s never gets it, and the step runs once."""
    settings.BILLFLOW = {**settings.BILLFLOW, "LEASE_SECONDS": 2}
    executions: list[str] = []

    def slow(ctx, params) -> dict:
        executions.append(ctx.idempotency_key)
        time.sleep(3)
        return {"done": True}

    registry.register(
        Action(key="tests.slow", label="Slow", execute=slow, transactional=False), replace=True
    )
    try:
        definition = {
            "name": "Slow call",
            "trigger": {"type": "manual", "input": []},
            "steps": [{"id": "slow", "type": "action", "action": "tests.slow", "params": {}}],
        }
        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        rival_claims: list[bool] = []
        done = threading.Event()

        def rival() -> None:
            from django.db import connection

            try:
                while not done.is_set():
                    rival_claims.append(lease_claim(run_id=run.pk, owner="rival") is not None)
                    time.sleep(0.1)
            finally:
                connection.close()

        thread = threading.Thread(target=rival)
        thread.start()
        try:
            status = run_execute(run_id=run.pk)
        finally:
            done.set()
            thread.join(timeout=10)
    finally:
        registry.unregister("tests.slow")

    assert status == Run.Status.SUCCEEDED
    assert len(rival_claims) >= 10 and not any(rival_claims)
    assert executions == [f"{run.pk}/slow/"]
    assert StepRun.objects.get(run=run, step_id="slow").attempts == 1


# --- real workers: each effect once, and a clear timeout ----------------------------------------


def _slow_partner(url: str) -> dict:
    return {
        "name": "Slow partner",
        "trigger": {"type": "manual", "input": []},
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": url, "body": {"hook": True}},
            }
        ],
    }


SLOW_MAIL = {
    "name": "Slow mail",
    "trigger": {"type": "manual", "input": []},
    "steps": [
        {
            "id": "tell",
            "type": "action",
            "action": "team.email",
            "params": {"recipients": ["mona"], "subject": "Run {{ run.id }}"},
        }
    ],
}


@pytest.mark.postgres
@pytest.mark.workers
def test_targets_trickling_past_the_lease_get_each_effect_once_and_a_clear_timeout(
    transactional_db, live, alice, mona, http_server, trickling_smtp, settings
):
    """With a 6 s lease (so 3 s send timeouts) and two workers, an HTTP target sends its
    headers at once and then a byte a second for 30 s, and the mail server answers DATA a line
    a second for 30 s. The test sweeps every 0.3 s to tempt a second worker, and keeps sweeping
    for two leases after both runs ended. Each target received its effect once; each run failed
    at its first attempt with a timeout that says why it is not sent again; no run had a second
    owner and no delivery a second attempt."""
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.script(Reply(200, "x" * 30, trickle=1))
    post_flow = factories.workflow_active(live, _slow_partner(http_server.url("/hook")), alice)
    mail_flow = factories.workflow_active(live, SLOW_MAIL, alice)
    env = {
        "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "BILLFLOW_LEASE_SECONDS": "6",  # the send timeouts become 3 s (tests/workers.py)
        "EMAIL_URL": trickling_smtp.url,
    }

    with qclusters(count=2, workers=1, env=env) as clusters:
        post_run = run_start_manual(workflow=post_flow, input={}, user=alice)
        mail_run = run_start_manual(workflow=mail_flow, input={}, user=alice)
        runs = [post_run, mail_run]
        owners: dict[int, set[str]] = {run.pk: set() for run in runs}
        deadline = time.monotonic() + 60
        ended_at = None
        while time.monotonic() < deadline:
            sweep()  # the every-minute sweep, called often: it re-enqueues expired leases
            for pk, owner in Run.objects.filter(pk__in=owners).values_list("pk", "lease_owner"):
                owners[pk].add(owner)
            if ended_at is None and Run.objects.filter(
                pk__in=owners, status__in=FINISHED
            ).count() == len(runs):
                ended_at = time.monotonic()
            if ended_at is not None and time.monotonic() - ended_at > 12:
                break  # two leases after the end: a displaced send would have landed by now
            time.sleep(0.3)
        logs = "\n".join(cluster.log() for cluster in clusters)

    post_run.refresh_from_db()
    mail_run.refresh_from_db()
    observed = (
        f"post run {post_run.status} {post_run.error}; mail run {mail_run.status} "
        f"{mail_run.error}; {len(http_server.requests)} requests, "
        f"{len(trickling_smtp.messages)} messages; owners {owners}\n{logs}"
    )
    assert ended_at is not None, observed
    assert len(http_server.requests) == 1, observed
    assert http_server.requests[0].headers["idempotency-key"] == f"{post_run.pk}/post/"
    assert len(trickling_smtp.messages) == 1, observed
    assert all(len(seen - {""}) == 1 for seen in owners.values()), observed

    assert post_run.status == Run.Status.FAILED, observed
    assert (post_run.error["type"], post_run.error["step"]) == ("timeout", "post")
    assert post_run.error["message"].startswith(
        "POST to 127.0.0.1 timed out after 3 s: the target answered 200 but did not finish"
    )
    assert mail_run.status == Run.Status.FAILED, observed
    assert (mail_run.error["type"], mail_run.error["step"]) == ("timeout", "tell")
    assert mail_run.error["message"].startswith(
        "The mail server did not answer within 3 s after the whole message was sent"
    )
    for run, step_id in ((post_run, "post"), (mail_run, "tell")):
        step = StepRun.objects.get(run=run, step_id=step_id)
        assert step.attempts == 1, observed
        delivery = Delivery.objects.get(idempotency_key=step.idempotency_key)
        assert (delivery.status, delivery.attempts) == (Delivery.Status.FAILED, 1), observed
    report = audit_ledger(live, smtp=trickling_smtp, expect_failed=runs, expect_runs=2)
    assert report.emails_unconfirmed == [f"{mail_run.pk}/tell/"]
