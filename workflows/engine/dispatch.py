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

import logging

from django.db import transaction
from django.utils import timezone

from billing.events import event_envelope
from billing.models import Event
from workflows.definition.rows import shared_definition
from workflows.engine import active_set, serial
from workflows.engine.conditions import evaluate
from workflows.engine.queue import run_enqueue
from workflows.engine.store import active_workflows
from workflows.engine.store.events import event_take_for_dispatch
from workflows.engine.store.runs import run_create, run_create_for_event
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


def _candidates(event: Event) -> list[Workflow]:
    """Active workflows of the event's environment triggered by its type, with their
    published versions (only the fields the dispatcher reads)."""
    cached = active_set.candidates_for(event.environment_id, event.type)
    if cached is not None:
        return cached
    return [
        active_set.candidate(
            version, environment_id=event.environment_id, name=version.workflow_name
        )
        for version in active_workflows.candidates_of_type(event.environment_id, event.type)
    ]


def trigger_accepts(
    *, accounts: str, conditions: object, event: Event, envelope: dict, workflow_id: int | None
) -> bool:
    """Whether a trigger of `event`'s type takes this event: its account scope, then its
    conditions on {"trigger": envelope}. Dispatch and backtests ask this, so "would start"
    means what starting means."""
    if not _matches_scope(accounts, event):
        return False
    try:
        return bool(evaluate(conditions, {"trigger": envelope}))
    except Exception:
        # A trigger that cannot be evaluated is treated as not matching, and logged.
        logger.exception("trigger conditions of workflow %s failed on %s", workflow_id, event.pk)
        return False


def matching_workflows(event: Event, envelope: dict) -> list[Workflow]:
    """Active workflows of the event's environment whose trigger accepts this event."""
    matched = []
    for workflow in _candidates(event):
        version = workflow.published_version
        if not _matches_scope(version.trigger_accounts, event):
            continue  # checked before the definition is read
        accepted = trigger_accepts(
            accounts=version.trigger_accounts,
            conditions=shared_definition(version)["trigger"].get("conditions"),
            event=event,
            envelope=envelope,
            workflow_id=workflow.pk,
        )
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
        event, signature = event_take_for_dispatch(event_id, now)
        if event is None:
            return []
        with active_set.seen(event.environment_id, signature):
            return _create_runs(event, now, guard_duplicates=True)


def _create_runs(event: Event, now, *, guard_duplicates: bool) -> list[int]:
    created: list[int] = []
    envelope = event_envelope(event)
    chain = list(event.cause_chain or [])
    for workflow in matching_workflows(event, envelope):
        error = recursion_error(workflow, chain)
        trigger = shared_definition(workflow.published_version)["trigger"]
        serial_key = serial.key_of(trigger, envelope)
        run = Run(
            environment_id=event.environment_id,
            workflow=workflow,
            version=workflow.published_version,
            trigger_kind=Run.TriggerKind.EVENT,
            event=event,
            trigger=envelope,
            cause_chain=chain,
            serial_key=serial_key,
            serial_max_wait=serial.max_wait_seconds(trigger) if serial_key else None,
        )
        if error is not None:
            run.status = Run.Status.FAILED
            run.error = error
            run.stop_reason = error["message"]
            run.finished_at = now
        if guard_duplicates:
            # One statement, no savepoint: the partial unique index on (workflow, event).
            if not run_create_for_event(run):
                continue  # this (workflow, event) already has its run
        else:
            run_create(run)  # a new event has no runs yet
        if error is None:
            run_enqueue(run.pk)
        else:
            notify_run_failed(run.pk)
        created.append(run.pk)
    return created
