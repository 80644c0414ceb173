"""Generate many runs and step runs for the inspector benchmark (bench_inspector).

    python manage.py generate_runs                       # 1,000,000 runs, 5,000,000 step runs
    python manage.py generate_runs --runs 10000 --steps 50000

Rows go into their own environment (`--environment`, default "bench", a sandbox) with five
workflows, so they never mix with real data. On PostgreSQL the rows are made by the server in
`INSERT … SELECT … FROM generate_series` batches (no Python per row, faster than COPY from the
client); elsewhere by `bulk_create` in large batches. Each run's shape is realistic enough for
the filters: event-triggered runs (4 in 5) have an Event with a type and an object id, step 1
records the customer it changed, 6% of runs failed at step 3.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from billing.models import Environment, Event
from workflows.engine.store.runs import runs_insert_many
from workflows.engine.store.steps import steps_insert_many
from workflows.models import Run, StepRun, Workflow

EVENT_TYPES = [
    "customer.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.created",
    "charge.refunded",
    "payment_intent.succeeded",
]
CUSTOMERS = 50_000
SPAN_DAYS = 60
WORKFLOWS = 5


def bench_definition(n: int) -> dict:
    return {
        "name": f"Bench workflow {n}",
        "trigger": {"type": "event", "event": "customer.updated", "accounts": "platform"},
        "steps": [
            {
                "id": f"s{i}",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.data.object.id }}",
                    "metadata": {"bench": str(i)},
                },
            }
            for i in range(1, 6)
        ],
    }


class Command(BaseCommand):
    help = "Generate runs and step runs for the inspector benchmark."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=1_000_000)
        parser.add_argument("--steps", type=int, default=5_000_000)
        parser.add_argument("--environment", default="bench")
        parser.add_argument("--batch", type=int, default=100_000)

    def handle(self, *args, runs: int, steps: int, environment: str, batch: int, **kw) -> None:
        env, _ = Environment.objects.get_or_create(
            slug=environment,
            defaults={"name": environment.title(), "kind": Environment.Kind.SANDBOX},
        )
        workflows = self._workflows(env)
        per_run = max(1, steps // max(runs, 1))
        tag = secrets.token_hex(3)
        started = time.monotonic()
        if connection.vendor == "postgresql":
            self._postgres(env, workflows, runs, per_run, batch, tag)
        else:
            self._bulk(env, workflows, runs, per_run, min(batch, 5000), tag)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Generated {runs} runs and {runs * per_run} step runs in {elapsed:.1f} s "
            f"(environment {env.slug})."
        )

    def _workflows(self, env: Environment) -> list[Workflow]:
        from workflows import services

        found = list(
            Workflow.objects.filter(environment=env, name__startswith="Bench workflow ")
            .exclude(published_version=None)
            .order_by("pk")[:WORKFLOWS]
        )
        for n in range(len(found) + 1, WORKFLOWS + 1):
            wf = services.workflow_create(environment=env, definition=bench_definition(n))
            services.workflow_publish(workflow=wf)
            wf.refresh_from_db()
            found.append(wf)
        return found

    # --- PostgreSQL: server-side generation ---------------------------------------------------

    def _postgres(self, env, workflows, runs, per_run, batch, tag) -> None:
        wf_ids = [w.pk for w in workflows]
        version_ids = [w.published_version_id for w in workflows]
        now = timezone.now()
        span = timedelta(days=SPAN_DAYS).total_seconds()
        with connection.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM workflows_run")
            for first in range(1, runs + 1, batch):
                last = min(first + batch - 1, runs)
                with transaction.atomic():
                    cur.execute("SELECT coalesce(max(id), 0) FROM workflows_run")
                    (before,) = cur.fetchone()
                    params = {
                        "env": env.pk,
                        "first": first,
                        "last": last,
                        "n": runs,
                        "tag": tag,
                        "now": now,
                        "span": span,
                        "types": EVENT_TYPES,
                        "customers": CUSTOMERS,
                        "wfs": wf_ids,
                        "versions": version_ids,
                        "before": before,
                        "per_run": per_run,
                    }
                    cur.execute(_EVENTS_SQL, params)
                    cur.execute(_RUNS_SQL, params)
                    cur.execute(_STEPS_SQL, params)
                self.stdout.write(f"  {last} / {runs} runs")
            cur.execute("ANALYZE workflows_run")
            cur.execute("ANALYZE workflows_steprun")
            cur.execute("ANALYZE billing_event")

    # --- other databases: bulk_create ---------------------------------------------------------

    def _bulk(self, env, workflows, runs, per_run, batch, tag) -> None:
        now = timezone.now()
        step = timedelta(days=SPAN_DAYS) / max(runs, 1)
        for first in range(1, runs + 1, batch):
            last = min(first + batch - 1, runs)
            events, run_rows = [], []
            for g in range(first, last + 1):
                created = now - step * (runs - g)
                wf = workflows[g % WORKFLOWS]
                customer = f"cus_g{tag}_{g % CUSTOMERS}"
                event_type = EVENT_TYPES[(g // 7) % len(EVENT_TYPES)]
                event = None
                if g % 5:
                    event = Event(
                        id=f"evt_g{tag}_{g}",
                        environment=env,
                        type=event_type,
                        created=created,
                        data={"object": {"id": customer, "object": "customer"}},
                        object_id=customer,
                        dispatched_at=created,
                    )
                    events.append(event)
                status = _status(g)
                run_rows.append(
                    Run(
                        environment=env,
                        workflow=wf,
                        version_id=wf.published_version_id,
                        status=status,
                        trigger_kind="event" if event else "manual",
                        event=event,
                        trigger={"type": event_type, "id": event.id, "data": event.data}
                        if event
                        else {"input": {"customer": customer}},
                        error=_error() if status == "failed" else None,
                        created=created,
                        started_at=created,
                        finished_at=created if status not in ("pending", "running") else None,
                    )
                )
            with transaction.atomic():
                Event.objects.bulk_create(events)
                made = runs_insert_many(run_rows)
                step_rows = []
                for run in made:
                    customer = (run.event.object_id if run.event else "") or "cus_none"
                    for s in range(1, per_run + 1):
                        step_rows.append(_step_run(run, s, customer))
                steps_insert_many(step_rows, batch_size=5000)
            self.stdout.write(f"  {last} / {runs} runs")


def _status(g: int) -> str:
    m = g % 100
    if m < 90:
        return "succeeded"
    if m < 96:
        return "failed"
    if m < 98:
        return "canceled"
    return "running" if m < 99 else "pending"


def _error() -> dict:
    return {"type": "ledger", "message": "Generated failure.", "step": "s3", "retryable": False}


def _step_run(run: Run, s: int, customer: str) -> StepRun:
    if run.status == "failed":
        status = "succeeded" if s < 3 else ("failed" if s == 3 else "skipped")
    elif run.status in ("succeeded", "canceled"):
        status = "succeeded"
    else:
        status = "pending"
    changed = (
        [{"object": "customer", "id": customer, "before": {"bench": ""}, "after": {"bench": "1"}}]
        if s == 1
        else []
    )
    return StepRun(
        run=run,
        step_id=f"s{s}",
        status=status,
        attempts=1,
        idempotency_key=f"{run.pk}/s{s}/",
        params={"customer": customer},
        output={"id": customer},
        error=_error() if status == "failed" else None,
        changed_objects=changed,
        started_at=run.created,
        finished_at=run.created,
    )


_EVENTS_SQL = """
INSERT INTO billing_event (id, environment_id, type, created, data, object_id, request_id,
                           idempotency_key, cause_chain, dispatched_at)
SELECT 'evt_g' || %(tag)s || '_' || g,
       %(env)s,
       (%(types)s::text[])[1 + (g / 7) %% 6],
       %(now)s::timestamptz - make_interval(secs => %(span)s * (%(n)s - g) / %(n)s),
       jsonb_build_object('object', jsonb_build_object(
           'id', 'cus_g' || %(tag)s || '_' || (g %% %(customers)s), 'object', 'customer')),
       'cus_g' || %(tag)s || '_' || (g %% %(customers)s),
       '', '', '[]'::jsonb,
       %(now)s::timestamptz - make_interval(secs => %(span)s * (%(n)s - g) / %(n)s)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
WHERE g %% 5 <> 0
"""

_RUNS_SQL = """
INSERT INTO workflows_run (environment_id, workflow_id, version_id, status, trigger_kind,
    event_id, trigger, cause_chain, path, error, stop_reason, lease_owner, created,
    started_at, finished_at, restart_count, dry_run)
SELECT %(env)s,
       (%(wfs)s::bigint[])[1 + g %% 5],
       (%(versions)s::bigint[])[1 + g %% 5],
       st,
       CASE WHEN g %% 5 <> 0 THEN 'event' ELSE 'manual' END,
       CASE WHEN g %% 5 <> 0 THEN 'evt_g' || %(tag)s || '_' || g END,
       CASE WHEN g %% 5 <> 0 THEN jsonb_build_object(
              'id', 'evt_g' || %(tag)s || '_' || g,
              'type', (%(types)s::text[])[1 + (g / 7) %% 6],
              'data', jsonb_build_object('object', jsonb_build_object(
                  'id', 'cus_g' || %(tag)s || '_' || (g %% %(customers)s))))
            ELSE jsonb_build_object('input', jsonb_build_object(
                  'customer', 'cus_g' || %(tag)s || '_' || (g %% %(customers)s))) END,
       '[]'::jsonb, '[]'::jsonb,
       CASE WHEN st = 'failed' THEN '{"type": "ledger", "message": "Generated failure.",
             "step": "s3", "retryable": false}'::jsonb END,
       '', '', ts, ts,
       CASE WHEN st IN ('pending', 'running') THEN NULL ELSE ts END,
       0, false
FROM (
    SELECT g,
           %(now)s::timestamptz - make_interval(secs => %(span)s * (%(n)s - g) / %(n)s) AS ts,
           CASE WHEN g %% 100 < 90 THEN 'succeeded' WHEN g %% 100 < 96 THEN 'failed'
                WHEN g %% 100 < 98 THEN 'canceled' WHEN g %% 100 < 99 THEN 'running'
                ELSE 'pending' END AS st
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
) AS src
ORDER BY g
"""

_STEPS_SQL = """
INSERT INTO workflows_steprun (run_id, step_id, iteration, status, attempts, idempotency_key,
    params, output, error, attempt_errors, attempt_log, branch_chosen, changed_objects,
    started_at, finished_at)
SELECT r.id, 's' || s, '',
       CASE WHEN r.status = 'failed' THEN
                CASE WHEN s < 3 THEN 'succeeded' WHEN s = 3 THEN 'failed' ELSE 'skipped' END
            WHEN r.status IN ('succeeded', 'canceled') THEN 'succeeded'
            ELSE 'pending' END,
       1, r.id || '/s' || s || '/',
       jsonb_build_object('customer', coalesce(r.trigger #>> '{data,object,id}',
                                               r.trigger #>> '{input,customer}')),
       jsonb_build_object('id', coalesce(r.trigger #>> '{data,object,id}',
                                         r.trigger #>> '{input,customer}')),
       CASE WHEN r.status = 'failed' AND s = 3 THEN r.error END,
       '[]'::jsonb, '[]'::jsonb, '',
       CASE WHEN s = 1 THEN jsonb_build_array(jsonb_build_object(
            'object', 'customer',
            'id', coalesce(r.trigger #>> '{data,object,id}', r.trigger #>> '{input,customer}'),
            'before', jsonb_build_object('bench', ''), 'after', jsonb_build_object('bench', '1')))
            ELSE '[]'::jsonb END,
       r.created, r.created
FROM workflows_run r CROSS JOIN generate_series(1, %(per_run)s) AS s
WHERE r.id > %(before)s AND r.environment_id = %(env)s
"""
