"""Events -> runs of every matching active workflow, one run per (workflow, event).

`dispatch_recorded_event` is the `BILLING_EVENT_DISPATCHER`: billing calls it inside the
transaction that records the event, so the runs and their queue messages (the ORM broker joins
the transaction) commit with the event or not at all, and the event is stored already marked
dispatched. With Redis as broker the enqueue waits for the commit (`run_enqueue`).

`event_dispatch(event_id=...)` dispatches an event recorded without a dispatcher (the sweep
finds those by their empty `dispatched_at`): in one transaction a conditional UPDATE marks it
dispatched (a second delivery finds it done and creates nothing), and the runs are created;
the `run_unique_workflow_event` constraint backs this up.
"""

from __future__ import annotations

import functools
import logging

from django.db import connection, transaction
from django.utils import timezone

from backoffice.inserts import insert_unless_taken
from backoffice.partial import partial_instance
from backoffice.selects import columns_of, from_row
from billing.events import event_envelope
from billing.models import Environment, Event
from workflows.definition.rows import shared_definition
from workflows.engine import active_set
from workflows.engine.conditions import evaluate
from workflows.engine.queue import run_enqueue
from workflows.models import Run, Workflow, WorkflowVersion
from workflows.operations.notifications import notify_run_failed

logger = logging.getLogger(__name__)

# A chain may re-trigger the same workflow once; this many earlier runs of it in the chain fail.
RECURSION_LIMIT = 2


def dispatch_recorded_event(event: Event) -> list[int]:
    """Create the runs of an event being recorded, in its transaction; returns their ids."""
    return _create_runs(event, timezone.now(), guard_duplicates=False)


def _matches_scope(scope: str, event: Event) -> bool:
    if scope == WorkflowVersion.AccountScope.ALL:
        return True
    if scope == WorkflowVersion.AccountScope.CONNECTED:
        return event.account_id is not None
    return event.account_id is None


# Every billing write asks this, so it is plain SQL: the ORM built this join in about 1 ms,
# PostgreSQL answers it in 0.2 ms. Only what the dispatcher needs is read; `raw()` converts the
# values as the ORM does and defers the other fields (read when first used).
_CANDIDATES_SQL = f"""
    SELECT v.id, v.workflow_id, v.number, v.published_at, v.trigger_accounts,
           w.name AS workflow_name
    {active_set.CANDIDATES_FROM} AND v.trigger_event = %s
    ORDER BY w.id
"""


def _candidates(event: Event) -> list[Workflow]:
    """Active workflows of the event's environment triggered by its type, with their
    published versions (only the fields the dispatcher reads)."""
    cached = active_set.candidates_for(event.environment_id, event.type)
    if cached is not None:
        return cached
    params = [*active_set.candidate_params(event.environment_id), event.type]
    return [
        active_set.candidate(
            version, environment_id=event.environment_id, name=version.workflow_name
        )
        for version in WorkflowVersion.objects.raw(_CANDIDATES_SQL, params)
    ]


def matching_workflows(event: Event, envelope: dict) -> list[Workflow]:
    """Active workflows of the event's environment whose trigger accepts this event."""
    matched = []
    for workflow in _candidates(event):
        version = workflow.published_version
        if not _matches_scope(version.trigger_accounts, event):
            continue
        conditions = shared_definition(version)["trigger"].get("conditions")
        try:
            accepted = evaluate(conditions, {"trigger": envelope})
        except Exception:
            # A trigger that cannot be evaluated is treated as not matching, and logged.
            logger.exception(
                "trigger conditions of workflow %s failed on %s", workflow.pk, event.pk
            )
            accepted = False
        if accepted:
            matched.append(workflow)
    return matched


def recursion_error(workflow: Workflow, chain: list) -> dict | None:
    """The error of a run that would re-trigger `workflow` a second time, else None."""
    earlier = [run_id for workflow_id, run_id in chain if workflow_id == workflow.pk]
    if len(earlier) < RECURSION_LIMIT:
        return None
    names = " -> ".join(f"workflow {wf} run {run}" for wf, run in chain)
    return {
        "type": "recursion",
        "message": (
            f"Recursion stopped: workflow '{workflow.name}' was triggered again by its own "
            f"changes after runs {', '.join(str(r) for r in earlier)}. Chain: {names}."
        ),
        "retryable": False,
        "step": None,
        "iteration": "",
    }


def event_dispatch(*, event_id: str) -> list[int]:
    """Dispatch an event recorded without a dispatcher; a repeat creates nothing."""
    now = timezone.now()
    with transaction.atomic():
        # The conditional update is the guard: whoever flips dispatched_at creates the runs;
        # a concurrent or later delivery waits on the row lock, then updates nothing.
        event, signature = _take_for_dispatch(event_id, now)
        if event is None:
            return []
        with active_set.seen(event.environment_id, signature):
            return _create_runs(event, now, guard_duplicates=True)


# PostgreSQL: flip `dispatched_at` and read the event with its environment's kind (the
# envelope's `livemode`) and the signature of the environment's active workflows, which its
# runs are then made from (active_set.py), in one statement.
@functools.cache
def _take_sql() -> str:
    return f"""
        UPDATE billing_event SET dispatched_at = %s FROM billing_environment e
        WHERE billing_event.id = %s AND billing_event.dispatched_at IS NULL
          AND e.id = billing_event.environment_id
        RETURNING {columns_of(Event, "billing_event")}, e.kind,
                  {active_set.signature_sql("billing_event.environment_id")}
    """


def _take_for_dispatch(event_id: str, now) -> tuple[Event | None, str | None]:
    if connection.vendor != "postgresql":
        taken = Event.objects.filter(pk=event_id, dispatched_at__isnull=True).update(
            dispatched_at=now
        )
        event = Event.objects.select_related("environment").get(pk=event_id) if taken else None
        return event, None
    params = [connection.ops.adapt_datetimefield_value(now), event_id]
    with connection.cursor() as cursor:
        cursor.execute(_take_sql(), [*params, *active_set.signature_params()])
        row = cursor.fetchone()
    if row is None:
        return None, None
    event = from_row(Event, row)
    event.environment = partial_instance(Environment, id=event.environment_id, kind=row[-2])
    return event, row[-1]


def _create_runs(event: Event, now, *, guard_duplicates: bool) -> list[int]:
    created: list[int] = []
    envelope = event_envelope(event)
    chain = list(event.cause_chain or [])
    for workflow in matching_workflows(event, envelope):
        error = recursion_error(workflow, chain)
        run = Run(
            environment_id=event.environment_id,
            workflow=workflow,
            version=workflow.published_version,
            trigger_kind=Run.TriggerKind.EVENT,
            event=event,
            trigger=envelope,
            cause_chain=chain,
        )
        if error is not None:
            run.status = Run.Status.FAILED
            run.error = error
            run.stop_reason = error["message"]
            run.finished_at = now
        if guard_duplicates:
            # One statement, no savepoint: the partial unique index on (workflow, event).
            if not insert_unless_taken(run, constraint="run_unique_workflow_event"):
                continue  # this (workflow, event) already has its run
        else:
            run.save()  # a new event has no runs yet
        if error is None:
            run_enqueue(run.pk)
        else:
            notify_run_failed(run.pk)
        created.append(run.pk)
    return created
