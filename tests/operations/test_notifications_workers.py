"""Failure notifications sent by real qcluster workers to a real SMTP server (PostgreSQL).

50 runs fail within a minute (a partner answers 400); the engine's failure transition writes the
outbox rows and queues the delivery tasks, the workers send through `EMAIL_URL`, and the
failures held back in the first window go out as one digest when the next window opens (a
one-off django-q schedule). The subscriber gets a handful of e-mails, not fifty.
"""

from __future__ import annotations

import re

import pytest

from tests import factories
from tests.httpserver import Reply
from tests.workers import qclusters, wait_for
from workflows.engine.runs import run_start_manual
from workflows.models import FailureDigest, FailureNotice, Run
from workflows.operations.notifications import subscription_set

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

FAILURES = 50
WINDOW = 20  # seconds, so the held-back digest is due within the test


def partner_post(url: str) -> dict:
    return {
        "name": "Tell the partner",
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


def all_notified() -> bool:
    return (
        FailureNotice.objects.count() == FAILURES
        and not FailureNotice.objects.filter(digest__isnull=True).exists()
        and not FailureDigest.objects.filter(sent_at__isnull=True).exists()
    )


@pytest.mark.timeout(600)
def test_it_sends_a_handful_of_emails_for_a_burst_of_50_failures(
    transactional_db, live, alice, mona, http_server, smtp_server, settings
):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.default = Reply(400, {"error": "no"})
    workflow = factories.workflow_active(live, partner_post(http_server.url("/p")), alice)
    subscription_set(user=mona, environment=live, workflow=workflow, on=True)
    env = {
        "BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "EMAIL_URL": smtp_server.url,
        "FAILURE_NOTIFICATION_WINDOW_SECONDS": str(WINDOW),
    }
    with qclusters(count=1, workers=2, env=env):
        runs = [
            run_start_manual(workflow=workflow, input={"note": str(i)}, user=alice)
            for i in range(FAILURES)
        ]
        wait_for(
            lambda: Run.objects.filter(status=Run.Status.FAILED).count() == FAILURES,
            timeout=240,
            every=0.5,
        )
        wait_for(all_notified, timeout=240, every=0.5)

    messages = [m for m in smtp_server.messages if "mona@example.com" in m.rcpt_tos]
    assert 1 <= len(messages) <= 6, [m.subject for m in messages]
    assert len(messages) == FailureDigest.objects.count()
    first = messages[0]
    assert "Tell the partner" in first.subject
    assert "post" in first.body
    assert "answered 400" in first.body
    assert re.search(r"/admin/runs/\d+/", first.body)
    # Every failed run is named by exactly one digest.
    named = sorted(FailureNotice.objects.values_list("run_id", flat=True))
    assert named == sorted(r.pk for r in runs)
