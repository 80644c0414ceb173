"""Failure notifications: real e-mails to a real SMTP server (aiosmtpd), grouped in bursts.

Runs fail through the engine in this process; the engine's failure transition writes the
outbox row (`notify_run_failed`), and the delivery task is called here the way a worker would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests import factories
from workflows.models import FailureDigest, FailureNotice, NotificationSubscription, Run
from workflows.operations.notifications import (
    failure_notifications_deliver,
    notify_run_failed,
    subscription_set,
    window_seconds,
)


@pytest.fixture
def followers(live, mona, alice, flaky_workflow):
    """Mona follows this workflow, Alice follows every workflow of live."""
    subscription_set(user=mona, environment=live, workflow=flaky_workflow, on=True)
    subscription_set(user=alice, environment=live, workflow=None, on=True)
    return [mona, alice]


def fail_runs(flaky_workflow, live, n: int) -> list[Run]:
    return [
        factories.run_executed(
            flaky_workflow, customer=factories.customer(live, email=f"c{i}@x.test")
        )
        for i in range(n)
    ]


def test_it_writes_one_outbox_row_when_the_engine_fails_a_run(flaky_workflow, live):
    (run,) = fail_runs(flaky_workflow, live, 1)
    assert run.status == Run.Status.FAILED
    notice = FailureNotice.objects.get(run=run)
    assert notice.workflow_id == flaky_workflow.pk
    assert notify_run_failed(run.pk) is False  # the same failure is noted once


def test_it_emails_each_subscriber_with_workflow_step_error_and_link(
    smtp_settings, followers, flaky_workflow, live
):
    (run,) = fail_runs(flaky_workflow, live, 1)
    assert failure_notifications_deliver(flaky_workflow.pk) == 1
    assert sorted(m.rcpt_tos[0] for m in smtp_settings.messages) == [
        "alice@example.com",
        "mona@example.com",
    ]
    message = smtp_settings.messages[0]
    assert "Ledger sync" in message.subject
    assert "sync" in message.subject
    assert "Ledger said no: account frozen." in message.body
    assert f"/admin/runs/{run.pk}/" in message.body
    assert FailureDigest.objects.get().sent_at is not None


def test_it_does_not_email_people_subscribed_to_another_workflow_or_environment(
    smtp_settings, flaky_workflow, live, sandbox, sam, vic, alice
):
    other = factories.workflow_active(live, factories.flaky_definition("Other"), alice)
    subscription_set(user=sam, environment=live, workflow=other, on=True)
    subscription_set(user=vic, environment=sandbox, workflow=None, on=True)
    fail_runs(flaky_workflow, live, 1)
    assert failure_notifications_deliver(flaky_workflow.pk) == 1
    assert smtp_settings.messages == []


def test_it_groups_a_burst_of_50_failures_into_a_handful_of_emails(
    smtp_settings, followers, flaky_workflow, live
):
    # Start at the beginning of a window so the minute of failures stays inside it.
    w = window_seconds()
    start = datetime.fromtimestamp((timezone.now().timestamp() // w) * w + 1, tz=UTC)
    # 50 failures within one minute; each queued a delivery task that a worker runs at once.
    for i in range(50):
        (run,) = fail_runs(flaky_workflow, live, 1)
        assert run.status == Run.Status.FAILED
        failure_notifications_deliver(flaky_workflow.pk, now=start + timedelta(seconds=i))
    assert FailureNotice.objects.count() == 50
    # The next window opens: the one-off schedule left for it runs once.
    later = start + timedelta(seconds=window_seconds() + 1)
    failure_notifications_deliver(flaky_workflow.pk, now=later)
    failure_notifications_deliver(flaky_workflow.pk, now=later)

    per_person: dict[str, int] = {}
    for m in smtp_settings.messages:
        per_person[m.rcpt_tos[0]] = per_person.get(m.rcpt_tos[0], 0) + 1
    assert per_person == {"alice@example.com": 2, "mona@example.com": 2}
    assert len(smtp_settings.messages) <= 4
    digest = [m for m in smtp_settings.messages if "runs of workflow" in m.subject][0]
    assert "49 runs of workflow 'Ledger sync' failed" in digest.subject
    assert "Ledger said no" in digest.body
    assert not FailureNotice.objects.filter(digest__isnull=True).exists()


def test_it_leaves_a_one_off_schedule_for_failures_held_back(followers, flaky_workflow, live):
    from django_q.models import Schedule

    fail_runs(flaky_workflow, live, 2)
    now = timezone.now()
    assert failure_notifications_deliver(flaky_workflow.pk, now=now) == 2
    fail_runs(flaky_workflow, live, 1)
    assert failure_notifications_deliver(flaky_workflow.pk, now=now) == 0
    schedule = Schedule.objects.get(name__startswith=f"failure-digest:{flaky_workflow.pk}:")
    assert schedule.func == "workflows.tasks.failure_notifications_deliver"
    assert schedule.next_run > now


def test_it_notifies_again_when_a_restarted_run_fails_again(flaky_workflow, live, mona):
    from workflows.engine.executor import run_execute
    from workflows.inspector.audit import run_restart_audited

    (run,) = fail_runs(flaky_workflow, live, 1)
    run_restart_audited(run=run, user=mona)
    assert run_execute(run_id=run.pk) == Run.Status.FAILED
    assert FailureNotice.objects.filter(run=run).count() == 2


def test_it_posts_one_slack_message_where_a_webhook_is_configured(
    settings, smtp_settings, followers, flaky_workflow, live, http_server
):
    settings.FAILURE_NOTIFICATIONS = {
        "WINDOW_SECONDS": 300,
        "SLACK_WEBHOOK_URL": http_server.url("/slack/hook"),
    }
    (run,) = fail_runs(flaky_workflow, live, 1)
    failure_notifications_deliver(flaky_workflow.pk)
    slack = [r for r in http_server.requests if r.path == "/slack/hook"]
    assert len(slack) == 1
    text = slack[0].json()["text"]
    assert "Ledger sync" in text
    assert "Ledger said no: account frozen." in text
    assert f"/admin/runs/{run.pk}/" in text


# --- the settings page ------------------------------------------------------------------------


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["vic", "sam"])
def test_it_forbids_notification_settings_to_readers(request, flaky_workflow, who):
    client = client_for(request.getfixturevalue(who))
    assert client.get(reverse("runs:notifications")).status_code == 403
    response = client.post(reverse("runs:notifications_update"), {"workflow": "all", "on": "1"})
    assert response.status_code == 403
    assert not NotificationSubscription.objects.exists()


@pytest.mark.parametrize("who", ["mona", "dave", "alice"])
def test_it_lets_managers_subscribe_and_unsubscribe(request, flaky_workflow, live, who):
    user = request.getfixturevalue(who)
    client = client_for(user)
    assert client.get(reverse("runs:notifications")).status_code == 200
    url = reverse("runs:notifications_update")
    assert client.post(url, {"workflow": str(flaky_workflow.pk), "on": "1"}).status_code == 302
    assert client.post(url, {"workflow": "all", "on": "1"}).status_code == 302
    subs = NotificationSubscription.objects.filter(user=user, environment=live)
    assert sorted(str(s.workflow_id) for s in subs) == sorted([str(flaky_workflow.pk), "None"])
    client.post(url, {"workflow": "all", "on": "0"})
    assert list(subs.values_list("workflow_id", flat=True)) == [flaky_workflow.pk]


def test_it_answers_a_subscription_change_over_htmx_with_the_table(mona, flaky_workflow):
    response = client_for(mona).post(
        reverse("runs:notifications_update"),
        {"workflow": "all", "on": "1"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert body.strip().startswith('<div id="notification-subs">')
    assert "On — turn off" in body


def test_it_answers_404_for_another_environments_workflow(mona, sandbox, alice, flaky):
    other = factories.workflow_active(sandbox, factories.flaky_definition("Sb"), alice)
    response = client_for(mona).post(
        reverse("runs:notifications_update"), {"workflow": str(other.pk), "on": "1"}
    )
    assert response.status_code == 404
    assert not NotificationSubscription.objects.exists()
