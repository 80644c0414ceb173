"""The circuit breaker: a workflow whose runs keep failing is deactivated, and its subscribers
are told why (docs/workflows.md, "Circuit breaker").

`breaker_check(workflow_id=…)` is the engine's second failure hook, called in the transaction that
fails the run (beside `notify_run_failed`). With the workflow's `auto_deactivate` rule (its
published version's), it counts the workflow's runs started in the last `window_minutes` that
have ended (succeeded or failed; the failing run included) and, when there are at least
`min_runs` of them and `failed / ended >= failure_rate`, deactivates the workflow with one
conditional `UPDATE … WHERE status = 'active'`: of two runs failing at once, one deactivates
it and the other updates nothing, so the workflow is deactivated, and its subscribers told,
once. The e-mail's task is queued in the same transaction (it commits or rolls back with the
failure) and sent by a worker after the commit.

Runs started before the breaker last tripped are not counted again: a workflow activated again
starts with a clean window.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.mail import send_mass_mail
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from workflows.engine.queue import task_enqueue
from workflows.engine.store.deliveries import delivery_insert_claim, delivery_mark_sent
from workflows.models import Delivery, Run, Workflow
from workflows.operations.notifications import slack_webhook_url, subscribers

logger = logging.getLogger(__name__)

# The queue stores this path: it names the stable entry point in workflows/tasks.py.
NOTIFY_TASK = "workflows.tasks.deactivation_notify"


def breaker_check(*, workflow_id: int, dry_run: bool = False) -> bool:
    """Deactivate the workflow of a run that just failed if its failure rate tripped the
    breaker; call it inside the transaction that fails the run. True when this call
    deactivated it."""
    if dry_run:
        return False
    workflow = (
        Workflow.objects.filter(pk=workflow_id, status=Workflow.Status.ACTIVE)
        .values("published_version__auto_deactivate", "deactivated_at")
        .first()
    )
    rule = workflow and workflow["published_version__auto_deactivate"]
    if not rule:
        return False
    rate, min_runs, minutes = rule["failure_rate"], rule["min_runs"], rule["window_minutes"]
    now = timezone.now()
    since = now - timedelta(minutes=minutes)
    if workflow["deactivated_at"] is not None:
        since = max(since, workflow["deactivated_at"])
    counts = Run.objects.filter(
        workflow_id=workflow_id,
        created__gte=since,
        dry_run=False,
        status__in=(Run.Status.SUCCEEDED, Run.Status.FAILED),
    ).aggregate(ended=Count("pk"), failed=Count("pk", filter=Q(status=Run.Status.FAILED)))
    ended, failed = counts["ended"], counts["failed"]
    if ended < min_runs or failed < rate * ended:
        return False
    reason = (
        f"Deactivated by its circuit breaker: {failed} of the {ended} runs that ended in the "
        f"last {minutes} minutes failed ({failed / ended:.0%}; the limit is a failure rate of "
        f"{rate:.0%} over at least {min_runs} runs)."
    )
    deactivated = Workflow.objects.filter(pk=workflow_id, status=Workflow.Status.ACTIVE).update(
        status=Workflow.Status.INACTIVE, deactivated_reason=reason, deactivated_at=now, updated=now
    )
    if not deactivated:
        return False  # another failure tripped it first
    _enqueue(workflow_id)
    return True


def _enqueue(workflow_id: int) -> None:
    # Joins the failing transaction: visible exactly when the failure commits.
    task_enqueue(NOTIFY_TASK, workflow_id, task_name=f"deactivation-notice-{workflow_id}")


def workflow_url(workflow_id: int) -> str:
    return f"{settings.SITE_URL}{reverse('workflows:builder', args=[workflow_id])}"


def deactivation_message(workflow: Workflow) -> tuple[str, str]:
    subject = f"[Billflow] Workflow '{workflow.name}' was deactivated: too many runs failed"
    body = "\n".join(
        [
            f"The workflow '{workflow.name}' was deactivated by its circuit breaker and starts "
            "no new runs.",
            "",
            workflow.deactivated_reason,
            "",
            f"Workflow: {workflow_url(workflow.pk)}",
            f"Its failed runs: {settings.SITE_URL}{reverse('runs:list')}"
            f"?workflow={workflow.pk}&status=failed",
            "",
            "Fix the cause, then activate the workflow again.",
            "",
            "You get this because you subscribed to failure notifications in Billflow.",
        ]
    )
    return subject, body


def deactivation_notify(workflow_id: int) -> int:
    """The queued task: e-mail the workflow's subscribers (and Slack) why it was deactivated.
    Returns the e-mails sent; nothing when the workflow was activated again meanwhile."""
    workflow = Workflow.objects.filter(pk=workflow_id).first()
    if workflow is None or not workflow.deactivated_reason:
        return 0
    # Claimed before sending, as failure digests and approval e-mails are: a task delivered
    # again (its worker killed after the claim) sends nothing twice.
    key = f"breaker/{workflow.pk}/{workflow.deactivated_at.isoformat()}"
    claim = delivery_insert_claim(kind=Delivery.Kind.EMAIL, idempotency_key=key, at=timezone.now())
    if claim is None:
        return 0
    subject, body = deactivation_message(workflow)
    recipients = subscribers(workflow=workflow)
    if recipients:
        send_mass_mail(
            [(subject, body, settings.DEFAULT_FROM_EMAIL, [u.email]) for u in recipients],
            fail_silently=False,
        )
    webhook = slack_webhook_url()
    if webhook:
        try:
            httpx.post(webhook, json={"text": f"*{subject}*\n{body}"}, timeout=10.0)
        except httpx.HTTPError:
            logger.warning("Slack deactivation notice for workflow %s not delivered", workflow_id)
    delivery_mark_sent(delivery=claim, output={"recipients": len(recipients)})
    return len(recipients)
