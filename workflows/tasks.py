"""django-q2 entry points: every function path the queue stores names this module.

Task rows and schedules keep a dotted path ("workflows.tasks.run_execute") in the database, so
the code they call may move inside `workflows/` without stranding a queued task or a schedule:
only this module's names are a contract. Each entry point is thin: it takes ids and calls the
module that does the work.
"""

from __future__ import annotations

from backoffice.logs import log_context
from workflows.backtests.jobs import backtest_apply as _backtest_apply
from workflows.backtests.jobs import backtests_resume
from workflows.batches.jobs import batch_apply, batches_resume
from workflows.engine.executor import run_execute as _run_execute
from workflows.engine.faults import fault_point
from workflows.engine.runs import run_start_scheduled
from workflows.engine.sweep import sweep as _sweep
from workflows.models import Workflow
from workflows.operations.breaker import deactivation_notify as _deactivation_notify
from workflows.operations.health import stall_check as _stall_check
from workflows.operations.notifications import (
    failure_notifications_deliver as _failure_notifications_deliver,
)
from workflows.operations.retention import retention_prune as _retention_prune
from workflows.system.catalogue import payment_retries_run


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
    """Periodic recovery: lost dispatches, runs nobody works on, due retries, run batches
    and backtests whose worker died."""
    return {**_sweep(), "batches": batches_resume(), "backtests": backtests_resume()}


def run_batch_apply(batch_id: int) -> str:
    """A bulk restart or cancel (`RunBatch`): apply its items; a long one continues in a new
    task."""
    return batch_apply(batch_id=batch_id)


def backtest_apply(backtest_id: int) -> str:
    """A backtest: replay its range's events in chunks; a long one continues in a new task."""
    return _backtest_apply(backtest_id=backtest_id)


def stall_check() -> bool:
    """Every minute (schedule `billflow.stall_check`): alert operators once per stall."""
    return _stall_check()


def retention_prune() -> dict:
    """Every minute (schedule `billflow.retention`): prune what the retention policy covers,
    within the pass's time budget; a backlog left over is the next minute's work."""
    return _retention_prune()


def failure_notifications_deliver(workflow_id: int) -> int:
    """Queued when a run fails (and by one-off schedules for the next window): send the
    workflow's failure digest for this window."""
    return _failure_notifications_deliver(workflow_id)


def deactivation_notify(workflow_id: int) -> int:
    """Queued when the circuit breaker deactivated a workflow: tell its subscribers why."""
    return _deactivation_notify(workflow_id)


def payment_retries() -> int:
    """Every few minutes (schedule `billflow:payment-retries`): charge the invoices due again."""
    return payment_retries_run()
