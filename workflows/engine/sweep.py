"""The periodic sweep: recovers whatever a lost message or a dead worker left behind.

The database says what still needs work, so the sweep can run anywhere, any number of times:
* events committed more than `EVENT_GRACE` ago and still undispatched are dispatched (the
  after-commit hand-off was lost, e.g. the process died right after the commit);
* pending runs older than `RUN_GRACE` (their queue message was lost, e.g. Redis restarted),
  pending runs whose retry is due, waiting runs whose delay is over, and running runs whose
  lease expired are enqueued again (a run queued behind an earlier open run of its serial
  key is enqueued when that run ends instead, `workflows/engine/serial.py`).
  A duplicate message is harmless: only one worker can claim the run;
* successful django-q task results older than `KEEP_RESULTS` are pruned (`save_limit = 0`
  keeps every result, because pruning on each result cost 4-5x throughput).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_q.models import Success

from billing.models import Event
from workflows.engine.dispatch import event_dispatch
from workflows.engine.queue import run_enqueue
from workflows.models import Run

EVENT_GRACE = timedelta(seconds=5)
RUN_GRACE = timedelta(seconds=30)
BATCH = 500
KEEP_RESULTS = timedelta(days=1)


def sweep() -> dict:
    now = timezone.now()
    event_ids = list(
        Event.objects.filter(dispatched_at__isnull=True, created__lt=now - EVENT_GRACE)
        .order_by("created")
        .values_list("pk", flat=True)[:BATCH]
    )
    for event_id in event_ids:
        event_dispatch(event_id=event_id)
    stuck = (
        Q(status=Run.Status.RUNNING, lease_expires_at__lt=now)
        | Q(status=Run.Status.PENDING)
        & (
            Q(next_attempt_at__isnull=True, created__lt=now - RUN_GRACE)
            | Q(next_attempt_at__lte=now)
        )
        | Q(status=Run.Status.WAITING, next_attempt_at__lte=now)
        # The first pending run of a serial key, at every pass: it may be held by a failed
        # run whose max wait is over (one message per held key and pass).
        | Q(status=Run.Status.PENDING, serial_key__isnull=False)
    )
    # A pending run of a serial key behind an earlier open run of its key is enqueued when
    # that run ends (`serial.key_released`), not at every pass.
    queued_behind = Run.objects.filter(
        workflow_id=OuterRef("workflow_id"),
        serial_key=OuterRef("serial_key"),
        pk__lt=OuterRef("pk"),
        status__in=[Run.Status.PENDING, Run.Status.RUNNING, Run.Status.WAITING],
    )
    run_ids = list(
        Run.objects.filter(stuck)
        .exclude(Q(status=Run.Status.PENDING, serial_key__isnull=False) & Exists(queued_behind))
        .order_by("pk")
        .values_list("pk", flat=True)[:BATCH]
    )
    with transaction.atomic():
        for run_id in run_ids:
            run_enqueue(run_id)
    old = list(
        Success.objects.filter(stopped__lt=now - KEEP_RESULTS).values_list("pk", flat=True)[
            : BATCH * 10
        ]
    )
    if old:
        Success.objects.filter(pk__in=old).delete()
    return {"events": len(event_ids), "runs": len(run_ids), "pruned": len(old)}
