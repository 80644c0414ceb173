"""Retention: run history is kept `BILLFLOW["RUN_RETENTION_DAYS"]` days (default 90), then pruned.

The policy (docs/operations.md):

* runs that ended `succeeded` or `canceled` and finished before the window are deleted with
  their step runs, audit rows, failure notices and the delivery records of their steps;
* `failed` runs are never deleted: a failure nobody resolved is work still to do. A failed run
  that is restarted and succeeds becomes `succeeded` and ages out like any other;
* running and pending runs are never deleted;
* idempotency records older than the window are deleted (Stripe keeps keys 24 hours; a step
  that failed recorded none, because its writes and its success commit together);
* django-q failure records older than the window are deleted (the sweep prunes successes);
* events are the billing audit trail: kept unless `BILLFLOW["EVENT_RETENTION_DAYS"]` is set,
  and then only dispatched events that no remaining run points at.

Each batch is one short transaction and one call does at most `max_batches` of them, so the
hourly schedule never holds locks for long; a backlog is worked off over several calls.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import Event, IdempotencyRecord
from workflows.engine.store.deliveries import deliveries_delete
from workflows.engine.store.runs import runs_delete
from workflows.models import Delivery, FailureDigest, Run, StepRun

PRUNABLE = (Run.Status.SUCCEEDED, Run.Status.CANCELED, Run.Status.RESOLVED)
BATCH = 500
MAX_BATCHES = 40


def retention_days() -> int:
    return int(settings.BILLFLOW.get("RUN_RETENTION_DAYS", 90))


def runs_prune(
    *,
    now: datetime | None = None,
    days: int | None = None,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete succeeded and canceled runs that finished before the window; returns the count."""
    cutoff = (now or timezone.now()) - timedelta(days=days or retention_days())
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(
                Run.objects.filter(status__in=PRUNABLE, finished_at__lt=cutoff)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            keys = list(
                StepRun.objects.filter(run_id__in=ids).values_list("idempotency_key", flat=True)
            )
            # A delivery record only stops a second send of a step that may run again; these
            # runs are over, so their records go with them.
            deliveries_delete(Delivery.objects.filter(idempotency_key__in=keys))
            # The status is checked again in the DELETE: terminal states never change back,
            # but a run must never be lost to a race with something we did not foresee.
            runs_delete(Run.objects.filter(pk__in=ids, status__in=PRUNABLE))
        deleted += len(ids)
    return deleted


def _delete_in_batches(queryset, *, batch: int, max_batches: int) -> int:
    """Delete the rows of `queryset` by primary key, `batch` at a time."""
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch])
            if not ids:
                break
            # The conditions are checked again in the DELETE, inside this transaction.
            queryset.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted


def retention_prune(
    now: datetime | None = None, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> dict:
    """The scheduled prune (`billflow.retention`, hourly): every table the policy covers."""
    from django_q.models import Failure

    now = now or timezone.now()
    cutoff = now - timedelta(days=retention_days())
    limits = {"batch": batch, "max_batches": max_batches}
    result = {
        "runs": runs_prune(now=now, batch=batch, max_batches=max_batches),
        "idempotency_records": _delete_in_batches(
            IdempotencyRecord.objects.filter(created__lt=cutoff), **limits
        ),
        "task_failures": _delete_in_batches(Failure.objects.filter(stopped__lt=cutoff), **limits),
        # Digests whose notices went with their runs (or that named none).
        "failure_digests": _delete_in_batches(
            FailureDigest.objects.filter(created__lt=cutoff, notices__isnull=True), **limits
        ),
        "events": 0,
    }
    event_days = int(settings.BILLFLOW.get("EVENT_RETENTION_DAYS", 0))
    if event_days:
        result["events"] = _delete_in_batches(
            Event.objects.filter(
                created__lt=now - timedelta(days=event_days),
                dispatched_at__isnull=False,
                runs__isnull=True,
            ),
            **limits,
        )
    return result
