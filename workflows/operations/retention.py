"""Retention: run history is kept `BILLFLOW["RUN_RETENTION_DAYS"]` days (default 90), then pruned.

The policy (docs/operations.md):

* runs that ended `succeeded`, `canceled` or `resolved` and finished before the window are
  deleted with their step runs, audit rows, notes, batch items, failure notices and the
  delivery records of their steps;
* `failed` runs are never deleted: a failure nobody resolved is work still to do. A failed run
  that is restarted and succeeds becomes `succeeded` and ages out like any other;
* running and pending runs are never deleted;
* idempotency records older than the window are deleted (Stripe keeps keys 24 hours; a step
  that failed recorded none, because its writes and its success commit together);
* django-q failure records older than the window are deleted (the sweep prunes successes);
* money guardrails' totals last changed before the window are deleted;
* events are the billing audit trail: kept unless `BILLFLOW["EVENT_RETENTION_DAYS"]` is set,
  and then only dispatched events that no remaining run points at.

Keeping up: the schedule runs every minute and a pass works batch after batch, oldest first,
until nothing is left or its time budget (`BILLFLOW["RETENTION_BUDGET_SECONDS"]`, 30 s) is
spent; a backlog left over is the next minute's work. Each batch is one short transaction, so
locks are never held for long, and the budget keeps a pass inside its minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import CASCADE, Min, QuerySet
from django.dispatch import Signal
from django.utils import timezone

from billing.models import Event, IdempotencyRecord
from workflows.engine.store.deliveries import deliveries_delete_of_runs
from workflows.engine.store.runs import runs_delete
from workflows.models import Delivery, FailureDigest, GuardrailTotal, Run, StepRun

PRUNABLE = (Run.Status.SUCCEEDED, Run.Status.CANCELED, Run.Status.RESOLVED)
# 500 runs (with some 2,500 step records) per transaction: big enough that the per-statement
# overhead is small, small enough that a batch holds its locks for a fraction of a second.
BATCH = 500
# Sent inside each batch's transaction with `run_ids`, before the runs go: apps above the
# engine that keep rows about runs without a foreign key (the history app's status changes)
# delete theirs in the same transaction and return {model label: rows deleted}.
runs_pruned = Signal()
# /health/ counts the backlog up to this and then says "more than": the count stays cheap.
BACKLOG_COUNT_LIMIT = 10_000


def retention_days() -> float:
    """The window in days: a whole number from the environment; a fraction of a day is
    accepted in settings (the steady-state test keeps ten minutes)."""
    days = settings.BILLFLOW.get("RUN_RETENTION_DAYS", 90)
    return days if isinstance(days, float) else int(days)


def retention_budget() -> float:
    """Seconds one scheduled pass may work before it leaves the rest to the next minute."""
    return float(settings.BILLFLOW.get("RETENTION_BUDGET_SECONDS", 30))


def retention_cutoff(now: datetime | None = None, days: float | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=days or retention_days())


def prunable_runs(cutoff: datetime) -> QuerySet:
    """Runs the policy deletes: ended (not failed) before the cutoff. Served by the partial
    index `run_prunable_finished`, whichever other runs the table holds."""
    return Run.objects.filter(status__in=PRUNABLE, finished_at__lt=cutoff)


class Budget:
    """A pass's deadline on the monotonic clock; None means no deadline (the command's)."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


@dataclass
class RunsPruned:
    runs: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # model label -> rows deleted
    # The pass reached the end of the backlog (a batch came back short): nothing is left.
    caught_up: bool = False

    def add(self, rows: dict[str, int]) -> None:
        for label, count in rows.items():
            self.rows[label] = self.rows.get(label, 0) + count
        self.runs += rows.get(Run._meta.label, 0)


def runs_prune_batch(cutoff: datetime, *, batch: int = BATCH) -> dict[str, int]:
    """Delete the `batch` oldest prunable runs in one transaction; rows deleted per model."""
    with transaction.atomic():
        # SKIP LOCKED: two passes at once (a queue that fell behind) take different runs.
        ids = list(
            prunable_runs(cutoff)
            .order_by("finished_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return {}
        # The runs are locked until commit, so none changes status before the DELETE (which
        # checks it again all the same: a run must never be lost to a race we did not foresee).
        deliveries = deliveries_delete_of_runs(ids)
        kept_elsewhere = [counts for _, counts in runs_pruned.send(Run, run_ids=ids) if counts]
        rows = runs_delete(ids, statuses=PRUNABLE)
    if deliveries:
        rows[Delivery._meta.label] = deliveries
    for counts in kept_elsewhere:
        rows.update(counts)
    return rows


def runs_prune(
    *,
    now: datetime | None = None,
    days: float | None = None,
    batch: int = BATCH,
    max_batches: int | None = None,
    budget: Budget | None = None,
    progress: Callable[[RunsPruned], None] | None = None,
) -> int:
    """Delete prunable runs batch after batch until none is left, `max_batches` were done or
    the budget is spent (at least one batch either way); returns the runs deleted."""
    return runs_prune_detailed(
        now=now, days=days, batch=batch, max_batches=max_batches, budget=budget, progress=progress
    ).runs


def runs_prune_detailed(
    *,
    now: datetime | None = None,
    days: float | None = None,
    batch: int = BATCH,
    max_batches: int | None = None,
    budget: Budget | None = None,
    progress: Callable[[RunsPruned], None] | None = None,
) -> RunsPruned:
    cutoff = retention_cutoff(now, days)
    budget = budget or Budget(None)
    done = RunsPruned()
    batches = 0
    while max_batches is None or batches < max_batches:
        rows = runs_prune_batch(cutoff, batch=batch)
        batches += 1
        done.add(rows)
        if progress and rows:
            progress(done)
        if rows.get(Run._meta.label, 0) < batch:
            done.caught_up = True  # no second look for an empty batch
            break
        if budget.spent():
            break
    return done


def _delete_in_batches(queryset, *, batch: int, budget: Budget) -> int:
    """Delete the rows of `queryset` by primary key, `batch` at a time, within the budget."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch])
            if not ids:
                break
            # The conditions are checked again in the DELETE, inside this transaction.
            queryset.filter(pk__in=ids).delete()
        deleted += len(ids)
        if budget.spent():
            break
    return deleted


def _other_tables(now: datetime, days: float | None) -> dict[str, QuerySet]:
    """What the policy prunes besides runs, by the name the result reports it under."""
    from django_q.models import Failure

    cutoff = retention_cutoff(now, days)
    tables = {
        "idempotency_records": IdempotencyRecord.objects.filter(created__lt=cutoff),
        "task_failures": Failure.objects.filter(stopped__lt=cutoff),
        # Digests whose notices went with their runs (or that named none).
        "failure_digests": FailureDigest.objects.filter(created__lt=cutoff, notices__isnull=True),
        # Money guardrails' totals last changed before the window: their day, hour or run is
        # long over (a run restarted after that starts its run total afresh).
        "guardrail_totals": GuardrailTotal.objects.filter(updated__lt=cutoff),
    }
    event_days = int(settings.BILLFLOW.get("EVENT_RETENTION_DAYS", 0))
    if event_days:
        tables["events"] = Event.objects.filter(
            created__lt=now - timedelta(days=event_days),
            dispatched_at__isnull=False,
            runs__isnull=True,
        )
    return tables


def retention_prune(
    now: datetime | None = None,
    *,
    days: float | None = None,
    budget: Budget | None = None,
    batch: int = BATCH,
    progress: Callable[[RunsPruned], None] | None = None,
) -> dict:
    """The scheduled prune (`billflow.retention`, every minute): every table the policy covers,
    runs first, within one time budget (`retention_budget()` unless one is given).

    Each table gets at least one batch, so a run backlog never starves the others. The result
    counts what was deleted, `step_runs` and `seconds` included, and says in `backlog` whether
    prunable runs were left for the next pass.
    """
    now = now or timezone.now()
    started = time.monotonic()
    budget = budget or Budget(retention_budget())
    runs = runs_prune_detailed(now=now, days=days, batch=batch, budget=budget, progress=progress)
    result = {
        "runs": runs.runs,
        "step_runs": runs.rows.get(StepRun._meta.label, 0),
        "events": 0,
    }
    for name, queryset in _other_tables(now, days).items():
        result[name] = _delete_in_batches(queryset, batch=batch, budget=budget)
    result["backlog"] = not runs.caught_up
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def retention_dry_run(now: datetime | None = None, *, days: float | None = None) -> dict[str, int]:
    """What a prune would delete now, counted per table; nothing is deleted.

    The run's cascades are read from the model (every relation that deletes with a run), so
    a table added later is counted without changing this.
    """
    now = now or timezone.now()
    runs = prunable_runs(retention_cutoff(now, days))
    counts = {Run._meta.db_table: runs.count()}
    for relation in Run._meta.get_fields(include_hidden=True):
        if not relation.one_to_many or getattr(relation, "on_delete", None) is not CASCADE:
            continue
        model = relation.related_model
        counts[model._meta.db_table] = model._base_manager.filter(
            **{f"{relation.field.name}__in": runs.values("pk")}
        ).count()
    keys = StepRun.objects.filter(run__in=runs.values("pk")).values("idempotency_key")
    counts[Delivery._meta.db_table] = Delivery.objects.filter(
        kind__in=Delivery.Kind.values, idempotency_key__in=keys
    ).count()
    for queryset in _other_tables(now, days).values():
        counts[queryset.model._meta.db_table] = queryset.count()
    return counts


def retention_backlog(now: datetime | None = None) -> dict:
    """For /health/: prunable runs past the window (counted up to BACKLOG_COUNT_LIMIT, then
    "more than") and how long past the window the oldest of them is."""
    now = now or timezone.now()
    cutoff = retention_cutoff(now)
    runs = prunable_runs(cutoff)
    counted = runs.order_by()[: BACKLOG_COUNT_LIMIT + 1].count()
    oldest = runs.aggregate(oldest=Min("finished_at"))["oldest"]
    lag = (cutoff - oldest).total_seconds() if oldest else 0.0
    return {
        "runs": min(counted, BACKLOG_COUNT_LIMIT),
        "more": counted > BACKLOG_COUNT_LIMIT,
        "oldest_past_window_seconds": round(lag, 1),
    }
