"""Failure notifications: an e-mail per subscriber (and one Slack message) when runs fail.

Durable and race-free with two small tables:

* `FailureNotice` — the outbox. `notify_run_failed(run_id)` writes one row in the transaction
  that fails the run and queues a delivery task that becomes visible when that transaction
  commits (the ORM broker joins it; with Redis it is sent on commit). A rolled-back failure
  leaves neither.
* `FailureDigest` — one per (workflow, time window). The delivery task creates the window's row
  and claims every unclaimed notice of the workflow with one conditional UPDATE. The unique
  (workflow, bucket) decides who sends: the first failure in a window is sent at once, later
  ones in the same window wait for the next window, when one digest names them all. A burst of
  50 failures in a minute is therefore two e-mails per subscriber, not fifty.

Sending happens after the claim commits, never inside a transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from workflows.engine.queue import task_enqueue
from workflows.models import (
    FailureDigest,
    FailureNotice,
    NotificationSubscription,
    Run,
    Workflow,
)

logger = logging.getLogger(__name__)

# The queue stores this path: it names the stable entry point in workflows/tasks.py.
DELIVER_TASK = "workflows.tasks.failure_notifications_deliver"
# At most this many runs are listed in one digest; the rest are a link to the filtered list.
DIGEST_LIST_LIMIT = 20


def _config() -> dict:
    defaults = {"WINDOW_SECONDS": 300, "SLACK_WEBHOOK_URL": ""}
    return {**defaults, **(getattr(settings, "FAILURE_NOTIFICATIONS", None) or {})}


def slack_webhook_url() -> str:
    return _config()["SLACK_WEBHOOK_URL"]


def window_seconds() -> int:
    return max(1, int(_config()["WINDOW_SECONDS"]))


def notify_run_failed(run_id: int) -> bool:
    """The engine's failure hook: call it inside the transaction that fails the run.

    Returns False when nothing is to be sent (a dry run, or this failure already noted).
    """
    run = Run.objects.filter(pk=run_id).values("workflow_id", "dry_run", "restart_count").first()
    if run is None or run["dry_run"]:
        return False
    try:
        with transaction.atomic():
            FailureNotice.objects.create(
                run_id=run_id, restart=run["restart_count"], workflow_id=run["workflow_id"]
            )
    except IntegrityError:
        return False
    _enqueue(run["workflow_id"])
    return True


def _enqueue(workflow_id: int) -> None:
    # Joins the failing transaction: visible exactly when the failure commits.
    task_enqueue(DELIVER_TASK, workflow_id, task_name=f"failure-notice-{workflow_id}")


def _bucket(now: datetime) -> int:
    return int(now.timestamp() // window_seconds())


def failure_notifications_deliver(workflow_id: int, now: datetime | None = None) -> int:
    """Send this window's notification for `workflow_id`; returns the runs it named.

    When this window already had its notification, the pending failures are left for the
    next window and a one-off schedule makes sure someone looks then.
    """
    now = now or timezone.now()
    if not FailureNotice.objects.filter(workflow_id=workflow_id, digest__isnull=True).exists():
        return 0
    bucket = _bucket(now)
    try:
        with transaction.atomic():
            digest = FailureDigest.objects.create(workflow_id=workflow_id, bucket=bucket)
            claimed = FailureNotice.objects.filter(
                workflow_id=workflow_id, digest__isnull=True
            ).update(digest=digest)
            if claimed == 0:
                # A rival claimed them between our check and our update; free the window.
                transaction.set_rollback(True)
                return 0
    except IntegrityError:
        _schedule_next_window(workflow_id, bucket + 1)
        return 0
    failure_digest_send(digest=digest)
    return claimed


def _schedule_next_window(workflow_id: int, bucket: int) -> None:
    from django_q.models import Schedule

    name = f"failure-digest:{workflow_id}:{bucket}"[:100]
    if Schedule.objects.filter(name=name).exists():
        return
    next_run = datetime.fromtimestamp(bucket * window_seconds(), tz=UTC) + timedelta(seconds=1)
    Schedule.objects.create(
        name=name,
        func=DELIVER_TASK,
        args=repr(workflow_id),
        schedule_type=Schedule.ONCE,
        next_run=next_run,
        repeats=-1,  # a one-off schedule deletes itself after it ran
    )


def run_url(run_id: int) -> str:
    return f"{settings.SITE_URL}{reverse('runs:detail', args=[run_id])}"


def subscribers(*, workflow: Workflow) -> list:
    """Users subscribed to this workflow's failures (or all), with an e-mail address."""
    from django.contrib.auth import get_user_model

    user_ids = NotificationSubscription.objects.filter(
        Q(workflow=workflow) | Q(workflow__isnull=True), environment_id=workflow.environment_id
    ).values("user_id")
    return list(
        get_user_model()
        .objects.filter(pk__in=user_ids, is_active=True)
        .exclude(email="")
        .order_by("pk")
    )


def digest_message(*, digest: FailureDigest) -> tuple[str, str]:
    """Subject and plain-text body naming the workflow, the failed step, the error and links."""
    workflow = Workflow.objects.get(pk=digest.workflow_id)
    notices = list(
        digest.notices.select_related("run").order_by("created", "id")[: DIGEST_LIST_LIMIT + 1]
    )
    total = digest.notices.count()
    lines: list[str] = []
    for notice in notices[:DIGEST_LIST_LIMIT]:
        error = notice.run.error or {}
        lines += [
            f"Run {notice.run_id} failed at step '{error.get('step') or '?'}'",
            f"  Error: {error.get('type') or 'error'}: "
            f"{error.get('message') or notice.run.stop_reason}",
            f"  {run_url(notice.run_id)}",
            "",
        ]
    if total == 1:
        error = notices[0].run.error or {}
        subject = f"Workflow '{workflow.name}' failed at step '{error.get('step') or '?'}'"
        intro = f"A run of the workflow '{workflow.name}' failed."
    else:
        subject = f"{total} runs of workflow '{workflow.name}' failed"
        intro = f"{total} runs of the workflow '{workflow.name}' failed in the last few minutes."
    if total > DIGEST_LIST_LIMIT:
        lines.append(f"… and {total - DIGEST_LIST_LIMIT} more.")
    failed_list = f"{settings.SITE_URL}{reverse('runs:list')}?workflow={workflow.pk}&status=failed"
    body = "\n".join(
        [
            intro,
            "",
            f"Workflow: {workflow.name}",
            "",
            *lines,
            f"All failed runs of this workflow: {failed_list}",
            "",
            "You get this because you subscribed to failure notifications in Billflow.",
        ]
    )
    return f"[Billflow] {subject}", body


def failure_digest_send(*, digest: FailureDigest) -> None:
    """E-mail every subscriber, post to Slack where configured, then mark the digest sent."""
    subject, body = digest_message(digest=digest)
    workflow = Workflow.objects.get(pk=digest.workflow_id)
    recipients = subscribers(workflow=workflow)
    if recipients:
        send_mass_mail(
            [(subject, body, settings.DEFAULT_FROM_EMAIL, [u.email]) for u in recipients],
            fail_silently=False,
        )
    webhook = _config()["SLACK_WEBHOOK_URL"]
    if webhook:
        try:
            httpx.post(webhook, json={"text": f"*{subject}*\n{body}"}, timeout=10.0)
        except httpx.HTTPError:
            # The e-mails went out; a Slack outage must not make them go out again.
            logger.warning("Slack failure notification for digest %s not delivered", digest.pk)
    FailureDigest.objects.filter(pk=digest.pk).update(sent_at=timezone.now())


def operators_notify(*, subject: str, body: str) -> int:
    """A message about the whole system (runs stopped moving), not one run's failure.

    Goes to everyone subscribed to failure notifications in any environment, and to the Slack
    webhook where configured. Returns the number of e-mails sent. Call it outside transactions.
    """
    from django.contrib.auth import get_user_model

    user_ids = NotificationSubscription.objects.values("user_id")
    recipients = list(
        get_user_model()
        .objects.filter(pk__in=user_ids, is_active=True)
        .exclude(email="")
        .order_by("pk")
    )
    subject = f"[Billflow] {subject}"
    if recipients:
        send_mass_mail(
            [(subject, body, settings.DEFAULT_FROM_EMAIL, [u.email]) for u in recipients],
            fail_silently=False,
        )
    webhook = _config()["SLACK_WEBHOOK_URL"]
    if webhook:
        try:
            httpx.post(webhook, json={"text": f"*{subject}*\n{body}"}, timeout=10.0)
        except httpx.HTTPError:
            logger.warning("Slack operator notification not delivered: %s", subject)
    return len(recipients)


def subscription_set(*, user, environment, workflow: Workflow | None, on: bool) -> bool:
    """Subscribe or unsubscribe `user`; returns whether the user is subscribed after."""
    qs = NotificationSubscription.objects.filter(
        user=user, environment=environment, workflow=workflow
    )
    if not on:
        qs.delete()
        return False
    if not qs.exists():
        try:
            with transaction.atomic():
                NotificationSubscription.objects.create(
                    user=user, environment=environment, workflow=workflow
                )
        except IntegrityError:
            pass  # a double click: already subscribed
    return True
