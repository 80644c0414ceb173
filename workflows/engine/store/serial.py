"""The runs of one serial key (`workflows/engine/serial.py`): who holds it, who is next.

A run of a key may start (be claimed while pending or waiting) only while no other run of the
key runs, and no earlier run of the key is pending, waiting, or failed less than its max wait
ago. `blocking_sql` is that rule, one `NOT EXISTS` of the claim (`runs.py`); `holder` gives
the inspector the run it waits for; `next_run` the run to look at once the key is let go.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from workflows.engine.store.statements import column, table
from workflows.models import Run

# The statuses of a run that still holds (or may hold) its key; the partial index
# `run_serial_key` holds only these.
OPEN = (Run.Status.PENDING, Run.Status.RUNNING, Run.Status.WAITING, Run.Status.FAILED)


def blocking_sql(db) -> str:
    """`EXISTS (…)` of a run that keeps the run being claimed (the UPDATE's own row) from
    starting. Parameters: running, pending, waiting, failed, and the time after which a
    failed run still holds the key (now - its max wait)."""
    run = table(Run, db)
    c = {n: column(Run, n, "p", db) for n in ("pk", "workflow", "serial_key", "status")}
    finished = column(Run, "finished_at", "p", db)
    own = {n: f"{run}.{column(Run, n, db=db)}" for n in ("pk", "workflow", "serial_key")}
    return f"""EXISTS (
        SELECT 1 FROM {run} p
        WHERE {c["workflow"]} = {own["workflow"]} AND {c["serial_key"]} = {own["serial_key"]}
          AND {c["pk"]} <> {own["pk"]}
          AND ({c["status"]} = %s OR {c["pk"]} < {own["pk"]} AND (
                 {c["status"]} IN (%s, %s) OR {c["status"]} = %s AND {finished} > %s)))"""


def blocking_params(failed_after: datetime) -> list:
    S = Run.Status
    return [S.RUNNING, S.PENDING, S.WAITING, S.FAILED, failed_after]


def _of_key(run: Run):
    return Run.objects.filter(
        workflow_id=run.workflow_id, serial_key=run.serial_key, status__in=OPEN
    ).exclude(pk=run.pk)


def holder(run: Run, now: datetime | None = None) -> Run | None:
    """The run that keeps `run` (pending or waiting) from starting now, or None."""
    if run.serial_key is None:
        return None
    now = now or timezone.now()
    failed_after = now - timedelta(seconds=run.serial_max_wait or 0)
    S = Run.Status
    rule = Q(status=S.RUNNING) | Q(pk__lt=run.pk) & (
        Q(status__in=[S.PENDING, S.WAITING]) | Q(status=S.FAILED, finished_at__gt=failed_after)
    )
    return _of_key(run).filter(rule).order_by("pk").first()


def next_run(run: Run) -> int | None:
    """The first pending run of `run`'s key after it: the one to look at once `run` ended."""
    return (
        _of_key(run)
        .filter(pk__gt=run.pk, status=Run.Status.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )


def passed_failed(run: Run, started: datetime) -> Run | None:
    """The latest earlier run of the key that had failed more than its max wait before
    `started` and was still failed: the run `run` went ahead of (the inspector says so)."""
    if run.serial_key is None or run.serial_max_wait is None:
        return None
    return (
        _of_key(run)
        .filter(pk__lt=run.pk, status=Run.Status.FAILED)
        .filter(finished_at__lte=started - timedelta(seconds=run.serial_max_wait))
        .order_by("-pk")
        .first()
    )
