"""The "runs stopped moving" alert (workflows.operations.health.stall_check, every minute).

It goes out through the failure-notification path
(workflows.operations.notifications.operators_notify) to everyone subscribed to failure
notifications, over a real SMTP server, once per stall.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone

from tests import factories
from workflows.engine.store.forcing import force_rows
from workflows.models import Run
from workflows.operations.health import STALL_KEY, stall_check
from workflows.operations.notifications import subscription_set


@pytest.fixture
def operators_subscribed(live, sandbox, mona, alice):
    subscription_set(user=mona, environment=live, workflow=None, on=True)
    subscription_set(user=alice, environment=sandbox, workflow=None, on=True)
    return [mona, alice]


def minutes_later(n: int):
    return timezone.now() + timedelta(minutes=n)


def test_it_notifies_once_per_stall_not_every_minute(
    region_workflow, operators_subscribed, smtp_settings
):
    factories.run_row(
        region_workflow, status="pending", created=timezone.now() - timedelta(minutes=6)
    )

    sent = [stall_check(now=minutes_later(i)) for i in range(5)]

    assert sent == [True, False, False, False, False]
    assert sorted(m.rcpt_tos[0] for m in smtp_settings.messages) == [
        "alice@example.com",
        "mona@example.com",
    ]
    message = smtp_settings.messages[0]
    assert message.subject == "[Billflow] Workflow runs have stopped moving"
    assert "Pending runs: 1" in message.body
    assert "The oldest pending run has waited" in message.body


def test_it_notifies_again_for_a_new_stall_after_runs_moved(
    region_workflow, operators_subscribed, smtp_settings
):
    run = factories.run_row(
        region_workflow, status="pending", created=timezone.now() - timedelta(hours=1)
    )
    assert stall_check() is True

    force_rows(Run.objects.filter(pk=run.pk)).update(
        status=Run.Status.SUCCEEDED, finished_at=timezone.now()
    )
    assert stall_check() is False  # moving again: the marker is cleared
    assert caches["shared"].get(STALL_KEY) is None

    factories.run_row(
        region_workflow, status="running", lease_expires_at=timezone.now() - timedelta(minutes=30)
    )
    assert stall_check() is True
    assert stall_check() is False
    assert len(smtp_settings.messages) == 4  # two stalls x two subscribers
    assert "stuck: 1" in smtp_settings.messages[-1].body


def test_it_stays_quiet_when_only_the_clusters_are_missing(
    region_workflow, operators_subscribed, smtp_settings
):
    factories.run_row(
        region_workflow, status="pending", created=timezone.now() - timedelta(seconds=20)
    )

    assert stall_check() is False
    assert smtp_settings.messages == []


def test_it_tries_again_next_minute_when_the_mail_server_refused(
    region_workflow, operators_subscribed, smtp_settings
):
    factories.run_row(
        region_workflow, status="pending", created=timezone.now() - timedelta(hours=1)
    )
    smtp_settings.reply_with = "451 4.3.0 Try again later"

    with pytest.raises(Exception):  # noqa: B017 - smtplib's refusal, whatever its class
        stall_check()
    assert caches["shared"].get(STALL_KEY) is None

    smtp_settings.reply_with = ""
    assert stall_check() is True
    assert len(smtp_settings.messages) == 2
