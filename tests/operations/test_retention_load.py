"""Retention keeps up with the engine's documented load: 50 runs/s, 5 step records each.

Time is simulated, not waited for: each tick is one minute of load (3,000 runs finishing at
their instants in that minute, with their step records, some deliveries and notes) followed by
the scheduled prune called as the every-minute schedule calls it, with `now` at the end of the
minute and the real time budget. The window is ten minutes, so the tables reach their steady
state within the test. Every batch commits (a transactional test), as in production: deleted
rows stay behind in the indexes until PostgreSQL sees their transaction end. The prune's real
throughput is printed (run with `-s` to see it).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests import factories
from workflows.engine.store.forcing import force_rows
from workflows.engine.store.runs import runs_insert_many
from workflows.engine.store.steps import steps_insert_many
from workflows.models import Delivery, Run, RunNote, StepRun
from workflows.operations.retention import retention_budget, retention_prune

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

RATE = 50  # runs a second: the engine's documented sustained throughput
STEPS = 5
PER_TICK = RATE * 60
WINDOW_MINUTES = 10
TICKS = 16


def minute_of_load(workflow, start) -> tuple[list[Run], int]:
    """Insert one minute of finished runs (every 20 ms one) the way the store writes history;
    returns the runs and how many of them are prunable."""
    rows = []
    for i in range(PER_TICK):
        finished = start + timedelta(seconds=i * 60 / PER_TICK)
        # Mostly succeeded; some canceled or resolved (prunable), one failed in 500 (kept).
        status = (
            Run.Status.FAILED
            if i % 500 == 7
            else Run.Status.CANCELED
            if i % 50 == 3
            else Run.Status.RESOLVED
            if i % 50 == 4
            else Run.Status.SUCCEEDED
        )
        rows.append(
            Run(
                environment_id=workflow.environment_id,
                workflow=workflow,
                version_id=workflow.published_version_id,
                status=status,
                trigger_kind=Run.TriggerKind.MANUAL,
                trigger={"input": {"customer": f"cus_{i}"}},
                created=finished - timedelta(seconds=1),
                started_at=finished - timedelta(seconds=1),
                finished_at=finished,
            )
        )
    runs = runs_insert_many(rows)
    steps_insert_many(
        [
            StepRun(
                run=run,
                step_id=f"s{s}",
                status=StepRun.Status.SUCCEEDED,
                attempts=1,
                idempotency_key=f"{run.pk}/s{s}/",
                output={"ok": True},
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
            for run in runs
            for s in range(1, STEPS + 1)
        ]
    )
    # One run in ten sent an e-mail at step 2; one in a hundred has a note.
    force_rows(Delivery).bulk_create(
        Delivery(kind="email", idempotency_key=f"{run.pk}/s2/", status="sent") for run in runs[::10]
    )
    RunNote.objects.bulk_create(RunNote(run=run, body="checked") for run in runs[::100])
    # What autovacuum's analyze does within a minute of such growth in production: a table
    # that grew from nothing in seconds has no statistics yet, and its first plans (the
    # foreign-key checks' too) would assume a few rows.
    with connection.cursor() as cursor:
        for model in (Run, StepRun, Delivery, RunNote):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    prunable = sum(1 for run in runs if run.status != Run.Status.FAILED)
    return runs, prunable


def test_run_tables_stay_flat_at_50_runs_a_second(transactional_db, region_workflow, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "RUN_RETENTION_DAYS": WINDOW_MINUTES / 1440}
    window = timedelta(minutes=WINDOW_MINUTES)
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=TICKS)
    # Never pruned however old: an unresolved failure, a pending and a running run.
    kept = [
        factories.run_row(region_workflow, status=s, created=start - timedelta(days=30))
        for s in ("failed", "pending", "running")
    ]

    failed_ids = {r.pk for r in kept}
    finished_by_tick: list[tuple] = []  # (tick start, prunable runs) per minute of load
    sizes, pruned_runs, pruned_steps, prune_seconds, longest = [], 0, 0, 0.0, 0.0
    for tick in range(TICKS):
        minute = start + timedelta(minutes=tick)
        runs, prunable = minute_of_load(region_workflow, minute)
        failed_ids |= {r.pk for r in runs if r.status == Run.Status.FAILED}
        finished_by_tick.append((minute, prunable))

        now = minute + timedelta(minutes=1)
        result = retention_prune(now=now)  # as the schedule calls it: the setting's budget

        assert not result["backlog"], f"tick {tick}: the budget ran out ({result})"
        pruned_runs += result["runs"]
        pruned_steps += result["step_runs"]
        if result["runs"]:  # the throughput is measured on the passes that had work
            prune_seconds += result["seconds"]
        longest = max(longest, result["seconds"])
        cutoff = now - window
        in_window = sum(n for begun, n in finished_by_tick if begun >= cutoff)
        prunable_left = Run.objects.exclude(pk__in=failed_ids).count()
        # Nothing inside the window was deleted, everything before it was.
        assert prunable_left == in_window, f"tick {tick}"
        assert set(Run.objects.filter(pk__in=failed_ids).values_list("pk", flat=True)) == (
            failed_ids
        )
        sizes.append((Run.objects.count(), StepRun.objects.count(), len(failed_ids)))

    # Steady state once the window is full: one window of runs, whatever the number of
    # minutes of load before it; the unresolved failures are kept (and counted separately).
    window_runs = WINDOW_MINUTES * PER_TICK
    steady = sizes[WINDOW_MINUTES - 1 :]
    assert {runs - failures for runs, _, failures in steady} == {window_runs - window_runs // 500}
    for runs, steps, failures in sizes:
        assert runs <= window_runs + PER_TICK + failures  # one tick's slack at most
        assert steps <= (window_runs + PER_TICK + failures) * STEPS
    assert Delivery.objects.count() == window_runs // 10
    assert RunNote.objects.count() == window_runs // 100

    print(
        f"\nretention at {RATE} runs/s x {STEPS} steps, {TICKS} simulated minutes, budget "
        f"{retention_budget():g} s a pass: run table {sizes[-1][0]:,} rows, steps "
        f"{sizes[-1][1]:,}; pruned {pruned_runs:,} runs and {pruned_steps:,} step records in "
        f"{prune_seconds:.1f} s = {pruned_runs / prune_seconds:,.0f} runs/s, "
        f"{pruned_steps / prune_seconds:,.0f} step records/s "
        f"(the longest pass {longest:.2f} s of its simulated minute)"
    )
