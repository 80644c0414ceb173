"""A run batch's job: resolve its selection into items, apply each item exactly once.

* `batch_create` writes the batch (and, for a list of runs, its items) in the caller's
  transaction and enqueues the job on commit; a filter is resolved by the job, not the request.
* `batch_apply` (the task `workflows.tasks.run_batch_apply`) resolves a filter in keyset chunks
  (`ignore_conflicts` on the unique (batch, run): a chunk resolved twice adds nothing), then
  applies pending items. Each item is one transaction: the item row is locked with
  `SKIP LOCKED` and still `pending`, the run's transition and its RunAudit row are written, and
  the item is marked in that same transaction. A worker killed mid-item rolls it all back; two
  workers on one batch never take the same item. After `TIME_BUDGET` the job enqueues its own
  continuation, so no task nears the queue's timeout however large the batch.
* `batches_resume` (called by the sweep) enqueues again any unfinished batch whose heartbeat is
  older than `STALE`: the worker applying it died.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from django_q.tasks import async_task

from billing.models import ApiKey, Environment
from workflows.batches.selection import batch_filters
from workflows.engine.runs import run_cancel, run_restart
from workflows.inspector.audit import run_audit_record
from workflows.inspector.selectors import runs_filtered
from workflows.models import RestartMode, Run, RunAudit, RunBatch, RunBatchItem, api_key_actor
from workflows.services import WorkflowStateError

log = logging.getLogger(__name__)

APPLY_TASK = "workflows.tasks.run_batch_apply"
RESOLVE_CHUNK = 1000
APPLY_SLICE = 50
# One task works this long, then hands the rest to a new task (the queue's timeout is 300 s).
TIME_BUDGET = 60.0
# A running batch whose heartbeat is this old lost its worker; the sweep enqueues it again.
STALE = timedelta(seconds=90)
# Which runs of a filter a batch applies to: the rest are not its business.
APPLIES_TO = {
    RunBatch.Action.RESTART: [Run.Status.FAILED],
    RunBatch.Action.CANCEL: [Run.Status.PENDING, Run.Status.RUNNING, Run.Status.WAITING],
}
UNFINISHED = [RunBatch.Status.PENDING, RunBatch.Status.RUNNING]


def batch_create(
    *,
    environment: Environment,
    action: str,
    runs: list[int] | None = None,
    filter: dict | None = None,
    mode: str = "",
    user: Any = None,
    api_key: ApiKey | None = None,
    enqueue: bool = True,
) -> RunBatch:
    """A new batch over `runs` (ids already checked to be `environment`'s) or `filter` (a
    `RunFilters.as_query()` dict); the job starts once the caller's transaction commits
    (`enqueue=False`: the caller applies it itself, as the commands do)."""
    if action == RunBatch.Action.RESTART:
        mode = mode or RestartMode.FROM_FAILED_STEP
    with transaction.atomic():
        if runs is not None:
            selection: dict = {"runs": runs}
        else:
            # Runs made after the click are not part of it, even if the job resolves later.
            last = Run.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            selection = {"filter": filter or {}, "up_to_run": last}
        batch = RunBatch.objects.create(
            environment=environment,
            action=action,
            mode=mode if action == RunBatch.Action.RESTART else "",
            selection=selection,
            user=user if getattr(user, "pk", None) else None,
            api_key=api_key,
        )
        if runs is not None:
            RunBatchItem.objects.bulk_create(
                [RunBatchItem(batch=batch, run_id=run_id) for run_id in dict.fromkeys(runs)],
                batch_size=RESOLVE_CHUNK,
                ignore_conflicts=True,
            )
            RunBatch.objects.filter(pk=batch.pk).update(
                total=batch.items.count(), resolved_at=timezone.now()
            )
        if enqueue:
            transaction.on_commit(lambda: batch_enqueue(batch.pk))
    batch.refresh_from_db()
    return batch


def batch_enqueue(batch_id: int) -> None:
    async_task(
        APPLY_TASK,
        batch_id,
        q_options={"task_name": f"run-batch-{batch_id}-{uuid.uuid4().hex[:8]}"},
    )


def batch_apply(
    *,
    batch_id: int,
    budget: float = TIME_BUDGET,
    on_progress: Callable[[RunBatch], None] | None = None,
    continue_with: Callable[[int], None] | None = batch_enqueue,
) -> str:
    """Work on the batch until it is finished or `budget` seconds are spent; its status."""
    deadline = time.monotonic() + budget
    now = timezone.now()
    started = RunBatch.objects.filter(pk=batch_id, status__in=UNFINISHED).update(
        status=RunBatch.Status.RUNNING, heartbeat_at=now
    )
    batch = RunBatch.objects.select_related("user", "api_key").get(pk=batch_id)
    if not started:
        return batch.status  # finished already: a redelivered or duplicate task
    if batch.started_at is None:
        RunBatch.objects.filter(pk=batch_id, started_at__isnull=True).update(started_at=now)
    try:
        while batch.resolved_at is None:
            _resolve_chunk(batch)
            _heartbeat(batch, on_progress)
            if time.monotonic() > deadline:
                return _continue(batch, continue_with)
        while _apply_slice(batch):
            _heartbeat(batch, on_progress)
            if time.monotonic() > deadline:
                return _continue(batch, continue_with)
    except Exception as exc:
        # A bug, not a run that could not be changed (those are items): the batch says so.
        log.exception("run batch %s failed", batch_id)
        _finish(batch, status=RunBatch.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _finish(batch, status=RunBatch.Status.SUCCEEDED)
    if on_progress is not None:
        on_progress(batch)
    return batch.status


def _continue(batch: RunBatch, continue_with: Callable[[int], None] | None) -> str:
    if continue_with is not None:
        continue_with(batch.pk)
    return "continued"


def _resolve_chunk(batch: RunBatch) -> None:
    """The next chunk of the filter's runs (by id, after the last one with an item)."""
    after = batch.items.aggregate(last=Max("run_id"))["last"] or 0
    runs = (
        runs_filtered(environment=batch.environment, filters=batch_filters(batch))
        .filter(
            status__in=APPLIES_TO[batch.action],
            pk__gt=after,
            pk__lte=batch.selection.get("up_to_run", 0),
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:RESOLVE_CHUNK]
    )
    ids = list(runs)
    RunBatchItem.objects.bulk_create(
        [RunBatchItem(batch=batch, run_id=run_id) for run_id in ids], ignore_conflicts=True
    )
    total = batch.items.count()
    if len(ids) < RESOLVE_CHUNK:
        batch.resolved_at = timezone.now()
    RunBatch.objects.filter(pk=batch.pk).update(total=total, resolved_at=batch.resolved_at)


def _apply_slice(batch: RunBatch) -> bool:
    """Apply up to APPLY_SLICE pending items; False when none was left to take."""
    ids = list(
        batch.items.filter(outcome=RunBatchItem.Outcome.PENDING)
        .order_by("id")
        .values_list("pk", flat=True)[:APPLY_SLICE]
    )
    if not ids:
        return False
    for item_id in ids:
        _apply_item(batch, item_id)
    return True


def _apply_item(batch: RunBatch, item_id: int) -> None:
    with transaction.atomic():
        item = (
            RunBatchItem.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=item_id, outcome=RunBatchItem.Outcome.PENDING)
            .select_related("run__version")
            .first()
        )
        if item is None:
            return  # another worker has it, or had it
        try:
            with transaction.atomic():
                _transition(batch, item.run)
        except WorkflowStateError as exc:
            item.outcome, item.message = RunBatchItem.Outcome.SKIPPED, _reason(exc, item.run)
        except Exception as exc:
            log.exception("run batch %s: run %s failed", batch.pk, item.run_id)
            item.outcome = RunBatchItem.Outcome.FAILED
            item.message = f"{type(exc).__name__}: {exc}"[:300]
        else:
            item.outcome = RunBatchItem.Outcome.DONE
        item.applied_at = timezone.now()
        item.save(update_fields=["outcome", "message", "applied_at"])


def _transition(batch: RunBatch, run: Run) -> None:
    """The run's transition and its audit row (the caller's transaction marks the item)."""
    note = f"batch {batch.pk}"
    if batch.action == RunBatch.Action.RESTART:
        run_restart(run=run, user=batch.user, mode=batch.mode or RestartMode.FROM_FAILED_STEP)
        action = RunAudit.Action.BULK_RESTART
    else:
        by = api_key_actor(batch.api_key) if batch.api_key is not None else ""
        run_cancel(run=run, user=batch.user, by=by)
        action = RunAudit.Action.BULK_CANCEL
    run_audit_record(run=run, action=action, user=batch.user, api_key=batch.api_key, note=note)


def _reason(exc: WorkflowStateError, run: Run) -> str:
    """Why a run was skipped, said once for every run it applies to (the summary's key)."""
    if exc.code != "invalid_state":  # recursion, an unavailable mode: already general
        return exc.message[:300]
    status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    if exc.message.rstrip(".").endswith("only failed runs restart"):
        return f"{status}: only failed runs restart"
    return f"{status}: only pending, running or waiting runs can be canceled"


def _heartbeat(batch: RunBatch, on_progress: Callable[[RunBatch], None] | None) -> None:
    """Counters recounted from the items (idempotent, whoever applied them) and a heartbeat."""
    counts = batch_counts(batch)
    RunBatch.objects.filter(pk=batch.pk).update(heartbeat_at=timezone.now(), **counts)
    if on_progress is not None:
        batch.refresh_from_db()
        on_progress(batch)


def batch_counts(batch: RunBatch) -> dict:
    """done, skipped, failed (from the (batch, outcome) index) and the reasons of the few that
    were not done."""
    per_outcome = dict(
        batch.items.values_list("outcome")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("outcome", "n")
    )
    reasons = (
        batch.items.filter(outcome__in=[RunBatchItem.Outcome.SKIPPED, RunBatchItem.Outcome.FAILED])
        .values_list("message")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "done": per_outcome.get(RunBatchItem.Outcome.DONE, 0),
        "skipped": per_outcome.get(RunBatchItem.Outcome.SKIPPED, 0),
        "failed": per_outcome.get(RunBatchItem.Outcome.FAILED, 0),
        "reasons": dict(reasons),
    }


def _finish(batch: RunBatch, *, status: str, error: str = "") -> None:
    counts = batch_counts(batch)
    RunBatch.objects.filter(pk=batch.pk, status=RunBatch.Status.RUNNING).update(
        status=status,
        error=error[:1000],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        total=batch.items.count(),
        **counts,
    )
    batch.refresh_from_db()


def batches_resume(*, stale: timedelta = STALE) -> int:
    """Enqueue again each unfinished batch nobody has worked on for `stale` (its worker died,
    or its message was lost); a batch still applied elsewhere is safe to take too."""
    limit = timezone.now() - stale
    ids = list(
        RunBatch.objects.filter(status__in=UNFINISHED, created__lt=limit)
        .exclude(heartbeat_at__gte=limit)
        .values_list("pk", flat=True)[:100]
    )
    for batch_id in ids:
        batch_enqueue(batch_id)
    return len(ids)
