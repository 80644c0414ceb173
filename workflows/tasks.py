"""django-q2 tasks: thin, they take an id and call the engine."""

from __future__ import annotations

from backoffice.logs import log_context
from workflows.engine.executor import run_execute as _run_execute
from workflows.engine.faults import fault_point
from workflows.engine.sweep import sweep as _sweep
from workflows.models import Workflow
from workflows.runs import run_start_scheduled


def run_execute(run_id: int) -> str:
    """ "Look at run N": claim it if it is free and execute its steps."""
    with log_context(run_id=run_id):  # every log line of this run's execution names it
        status = _run_execute(run_id=run_id)
    fault_point("before_ack", run_id=run_id)
    return status


def start_scheduled_run(workflow_id: int, slot: str | None = None) -> int | None:
    """Called by the workflow's django-q schedule with the slot's time (its
    `intended_date_kwarg`); a workflow no longer active is skipped, a slot already started
    returns its run."""
    workflow = Workflow.objects.select_related("published_version").filter(pk=workflow_id).first()
    if workflow is None or workflow.status != Workflow.Status.ACTIVE:
        return None
    return run_start_scheduled(workflow=workflow, slot=slot).pk


def sweep() -> dict:
    """Periodic recovery: lost dispatches, runs nobody works on, due retries."""
    return _sweep()
