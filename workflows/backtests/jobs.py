"""A backtest's job: replay the range's events in keyset chunks, each counted exactly once.

* `backtest_create` writes the backtest (the definition walked is kept with it) in the
  caller's transaction and enqueues the job on commit.
* `backtest_apply` (the task `workflows.tasks.backtest_apply`) reads the next `CHUNK` events
  of the trigger's type after the cursor (ordered by created, then id), replays each
  (`recording.replay`, each in a transaction rolled back), then in one transaction locks the
  backtest row, checks the cursor is still where the chunk started, adds the chunk's counts
  and moves the cursor. A worker killed mid-chunk commits nothing of it; a second worker on
  the same backtest finds the cursor moved and drops its chunk. After `TIME_BUDGET` the job
  enqueues its own continuation, as run batches do.
* `backtests_resume` (called by the sweep) enqueues again a running or queued backtest whose
  heartbeat is older than `STALE`: its worker died.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from billing.models import ApiKey, Event
from workflows.backtests.recording import Tally, path_keys, replay
from workflows.definition import walk as definition_walk
from workflows.engine.faults import fault_point
from workflows.models import Backtest, Workflow

log = logging.getLogger(__name__)

APPLY_TASK = "workflows.tasks.backtest_apply"
CHUNK = 200
# One task works this long, then hands the rest to a new task (the queue's timeout is 300 s).
TIME_BUDGET = 60.0
# A backtest whose heartbeat is this old lost its worker; the sweep enqueues it again.
STALE = timedelta(seconds=90)
UNFINISHED = [Backtest.Status.QUEUED, Backtest.Status.RUNNING]


def backtest_create(
    *,
    workflow: Workflow,
    definition: dict,
    version_number: int | None,
    since: datetime,
    until: datetime,
    user: Any = None,
    api_key: ApiKey | None = None,
    enqueue: bool = True,
) -> Backtest:
    """A new backtest of `definition` (checked by `requests.py`); the job starts once the
    caller's transaction commits."""
    with transaction.atomic():
        backtest = Backtest.objects.create(
            environment_id=workflow.environment_id,
            workflow=workflow,
            version_number=version_number,
            definition=definition,
            since=since,
            until=until,
            # Every step is in the report, also those no event would reach.
            steps={
                step_id: {"would_run": 0, "amounts": {}}
                for step_id in definition_walk.step_ids(definition)
            },
            user=user if getattr(user, "pk", None) else None,
            api_key=api_key,
        )
        if enqueue:
            transaction.on_commit(lambda: backtest_enqueue(backtest.pk))
    return backtest


def backtest_enqueue(backtest_id: int) -> None:
    async_task(
        APPLY_TASK,
        backtest_id,
        q_options={"task_name": f"backtest-{backtest_id}-{uuid.uuid4().hex[:8]}"},
    )


def events_in_range(backtest: Backtest) -> QuerySet[Event]:
    """The stored events the backtest looks at: its environment's, of the trigger's event type
    (no other type can start it), created in [since, until)."""
    return Event.objects.filter(
        environment_id=backtest.environment_id,
        type=(backtest.definition.get("trigger") or {}).get("event", ""),
        created__gte=backtest.since,
        created__lt=backtest.until,
    )


def backtest_apply(
    *,
    backtest_id: int,
    budget: float = TIME_BUDGET,
    chunk: int = CHUNK,
    continue_with: Callable[[int], None] | None = backtest_enqueue,
) -> str:
    """Work on the backtest until it is done or `budget` seconds are spent; its status."""
    deadline = time.monotonic() + budget
    now = timezone.now()
    started = Backtest.objects.filter(pk=backtest_id, status__in=UNFINISHED).update(
        status=Backtest.Status.RUNNING, heartbeat_at=now
    )
    backtest = Backtest.objects.select_related("workflow").get(pk=backtest_id)
    if not started:
        return backtest.status  # finished already: a redelivered or duplicate task
    try:
        if backtest.events_total is None:
            Backtest.objects.filter(pk=backtest_id, events_total__isnull=True).update(
                started_at=now, events_total=events_in_range(backtest).count()
            )
        keys = path_keys(backtest.definition)
        while _chunk(backtest, keys, chunk):
            if time.monotonic() > deadline:
                if continue_with is not None:
                    continue_with(backtest_id)
                return "continued"
    except Exception as exc:
        log.exception("backtest %s failed", backtest_id)
        _finish(backtest_id, Backtest.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _finish(backtest_id, Backtest.Status.DONE)
    return Backtest.objects.values_list("status", flat=True).get(pk=backtest_id)


def _after(backtest: Backtest) -> QuerySet[Event]:
    events = events_in_range(backtest)
    if backtest.cursor_created is not None:
        at, last = backtest.cursor_created, backtest.cursor_event
        events = events.filter(Q(created__gt=at) | Q(created=at, pk__gt=last))
    return events.order_by("created", "pk")


def _chunk(backtest: Backtest, keys: dict, size: int) -> bool:
    """Replay and count the next chunk; False when no event was left."""
    events = list(_after(backtest).select_related("environment")[:size])
    if not events:
        return False
    tally = Tally()
    for event in events:
        run = replay(
            event=event, workflow=backtest.workflow, definition=backtest.definition, keys=keys
        )
        tally.add(event, run, backtest.samples)
    fault_point("backtest_chunk", run_id=backtest.pk, step_id=str(backtest.events_scanned))
    with transaction.atomic():
        row = Backtest.objects.select_for_update().get(pk=backtest.pk)
        moved = (row.cursor_created, row.cursor_event) != (
            backtest.cursor_created,
            backtest.cursor_event,
        )
        if not moved and row.status == Backtest.Status.RUNNING:
            paths, steps, samples = tally.merged_into(row.paths, row.steps, row.samples)
            last = events[-1]
            Backtest.objects.filter(pk=row.pk).update(
                events_scanned=row.events_scanned + tally.scanned,
                would_start=row.would_start + tally.would_start,
                paths=paths,
                steps=steps,
                samples=samples,
                cursor_created=last.created,
                cursor_event=last.pk,
                heartbeat_at=timezone.now(),
            )
    # Another worker counted this chunk meanwhile (`moved`): go on from where it got to.
    backtest.refresh_from_db()
    return backtest.status == Backtest.Status.RUNNING


def _finish(backtest_id: int, status: str, *, error: str = "") -> None:
    now = timezone.now()
    Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.RUNNING).update(
        status=status, error=error[:1000], finished_at=now, heartbeat_at=now
    )


def backtests_resume(*, stale: timedelta = STALE) -> int:
    """Enqueue again each unfinished backtest nobody has worked on for `stale` (its worker
    died, or its message was lost); one still worked on elsewhere is safe to take too."""
    limit = timezone.now() - stale
    ids = list(
        Backtest.objects.filter(status__in=UNFINISHED, created__lt=limit)
        .exclude(heartbeat_at__gte=limit)
        .values_list("pk", flat=True)[:100]
    )
    for backtest_id in ids:
        backtest_enqueue(backtest_id)
    return len(ids)
