"""Run transitions: start (manual, scheduled), restart (three modes), resolve, cancel. Each is
one transaction.

Every transition is guarded by a conditional UPDATE with a count check (the store's,
`store/runs.py`), so a restart racing a cancel, or two operators restarting the same run,
change it once. Enqueueing happens in the
same transaction (the ORM broker joins it), or on commit with Redis.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.errors import InvalidRequestError
from workflows.actions import registry
from workflows.definition import walk
from workflows.definition.rows import version_definition
from workflows.definition.validation import validate_manual_input
from workflows.engine import serial
from workflows.engine.executor import step_idempotency_key
from workflows.engine.queue import run_enqueue
from workflows.engine.store.runs import (
    run_create,
    run_mark_canceled,
    run_mark_resolved,
    run_reopen_failed,
)
from workflows.engine.store.steps import steps_reset_all, steps_reset_for_restart
from workflows.models import RestartMode, Run, StepRun, Workflow, WorkflowVersion
from workflows.services import WorkflowStateError


def run_input_check(*, fields: list[dict], data: Any) -> dict:
    """The manual input, checked against the declared fields by the one checker
    (`validate_manual_input`); its first error is raised, naming the field."""
    if data is None:
        data = {}
    errors = validate_manual_input(fields, data)
    if errors:
        raise InvalidRequestError(f"{errors[0].message}.", param=errors[0].field)
    return data


def _startable_version(workflow: Workflow, trigger_type: str) -> WorkflowVersion:
    version = workflow.published_version
    if workflow.status != Workflow.Status.ACTIVE or version is None or workflow.deleted_at:
        raise WorkflowStateError(f"Workflow '{workflow.name}' is not active.", code="not_active")
    if version.trigger_type != trigger_type:
        raise WorkflowStateError(
            f"Workflow '{workflow.name}' has a {version.trigger_type} trigger, "
            f"not a {trigger_type} trigger.",
            code="wrong_trigger",
        )
    return version


def run_start_manual(*, workflow: Workflow, input: Any, user: Any = None) -> Run:
    """A pending run of a manual workflow with checked input, queued in the same transaction."""
    version = _startable_version(workflow, WorkflowVersion.TriggerType.MANUAL)
    data = run_input_check(fields=list(version.trigger_input or []), data=input)
    with transaction.atomic():
        run = run_create(
            Run(
                environment_id=workflow.environment_id,
                workflow=workflow,
                version=version,
                trigger_kind=Run.TriggerKind.MANUAL,
                trigger={"input": data},
                started_by=user if getattr(user, "pk", None) else None,
            )
        )
        run_enqueue(run.pk)
    return run


def run_start_scheduled(*, workflow: Workflow, slot: str | None = None) -> Run:
    """A pending run of a scheduled workflow (called by its django-q schedule).

    `slot` is the schedule time the run is for. django-q delivers a task again when its worker
    died before acknowledging it, so a second start for the same slot returns the first run
    instead of starting another: each slot runs at most once.
    """
    version = _startable_version(workflow, WorkflowVersion.TriggerType.SCHEDULE)
    now = timezone.now()
    schedule = {"cron": version.trigger_cron, "at": now.isoformat()}
    with transaction.atomic():
        if slot:
            schedule["slot"] = slot
            # Starts of one workflow take turns, so two deliveries cannot both miss the other.
            list(Workflow.objects.select_for_update().filter(pk=workflow.pk).values("pk"))
            existing = Run.objects.filter(
                workflow=workflow,
                trigger_kind=Run.TriggerKind.SCHEDULE,
                trigger__schedule__slot=slot,
            ).first()
            if existing is not None:
                return existing
        run = run_create(
            Run(
                environment_id=workflow.environment_id,
                workflow=workflow,
                version=version,
                trigger_kind=Run.TriggerKind.SCHEDULE,
                trigger={"schedule": schedule},
            )
        )
        run_enqueue(run.pk)
    return run


def _restart_target(run: Run, mode: str) -> tuple[WorkflowVersion, bool]:
    """The version a restart in `mode` runs and whether it starts from the first step."""
    if mode == RestartMode.FROM_FAILED_STEP:
        return run.version, False
    if mode == RestartMode.FROM_START:
        return run.version, True
    if mode != RestartMode.LATEST_VERSION:
        allowed = ", ".join(RestartMode.values)
        raise WorkflowStateError(
            f"Unknown restart mode '{mode}'; use one of: {allowed}.", code="mode", param="mode"
        )
    workflow = Workflow.objects.select_related("published_version").get(pk=run.workflow_id)
    version = workflow.published_version
    if workflow.deleted_at is not None:
        raise WorkflowStateError(
            f"Workflow '{workflow.name}' is deleted; it has no latest version to restart on.",
            code="no_published_version",
            param="mode",
        )
    if version is None:
        raise WorkflowStateError(
            f"Workflow '{workflow.name}' has no published version to restart on.",
            code="no_published_version",
            param="mode",
        )
    if version.trigger_type != run.trigger_kind:
        # The run's context is its own trigger's (an event, the manual input): another kind of
        # trigger's steps would not find what they read.
        raise WorkflowStateError(
            f"Version {version.number} of '{workflow.name}' has {_a(version.trigger_type)} "
            f"trigger; run {run.pk} was started by {_a(run.trigger_kind)} trigger.",
            code="wrong_trigger",
            param="mode",
        )
    failed_step = (run.error or {}).get("step")
    resumes = bool(failed_step) and failed_step in _step_ids(version)
    return version, not resumes


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _step_ids(version: WorkflowVersion) -> set[str]:
    return {place.step["id"] for place in walk.places(version_definition(version))}


def run_restart(*, run: Run, user: Any = None, mode: str = RestartMode.FROM_FAILED_STEP) -> Run:
    """Restart a failed run in `mode` (a `RestartMode`), one transaction:

    * `from_failed_step` (the default): on its own version, at the failed step; steps that
      succeeded are kept (their outputs are put back), every step keeps its idempotency key;
    * `from_start`: on its own version, a new attempt of every step under a new idempotency
      key, so the effects of steps that succeeded happen again;
    * `latest_version`: on the workflow's published version, resuming at the failed step when
      a step of that id still exists there (steps of the same id that succeeded are kept, new
      ones run), from the start otherwise (as `from_start`).
    """
    if (run.error or {}).get("type") == "recursion":
        raise WorkflowStateError(
            "A run stopped for recursion cannot be restarted; its trigger would loop.",
            code="recursion",
        )
    version, from_start = _restart_target(run, mode)
    restart = run.restart_count + 1
    with transaction.atomic():
        if not run_reopen_failed(
            run_id=run.pk,
            restart_count=restart,
            version_id=version.pk if version.pk != run.version_id else None,
            from_start=from_start,
        ):
            raise WorkflowStateError(
                f"Run {run.pk} is {Run.objects.get(pk=run.pk).status}; only failed runs restart."
            )
        if from_start:
            steps_reset_all(
                run.pk,
                key_for=lambda rec: step_idempotency_key(
                    run.pk, rec.step_id, rec.iteration, restart
                ),
            )
        else:
            # The failed step gets a fresh set of attempts; its earlier errors stay in history.
            steps_reset_for_restart(run.pk)
        run_enqueue(run.pk)
    run.refresh_from_db()
    return run


def run_resolve(*, run: Run) -> Run:
    """failed -> resolved: the operator closed the failure without a restart. The caller
    writes the resolution note in the same transaction (`inspector.audit`)."""
    if not run_mark_resolved(run_id=run.pk):
        status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        raise WorkflowStateError(f"Run {run.pk} is {status}; only failed runs can be resolved.")
    run.refresh_from_db()
    serial.key_released(run)  # a resolved run no longer holds its key
    return run


def run_restart_bulk(*, runs: list[Run], user: Any = None) -> tuple[list[Run], list[tuple]]:
    """Restart each run in its own transaction; returns (restarted, [(run, message)])."""
    restarted, skipped = [], []
    for run in runs:
        try:
            restarted.append(run_restart(run=run, user=user))
        except WorkflowStateError as exc:
            skipped.append((run, exc.message))
    return restarted, skipped


def run_restart_preview(*, run: Run, mode: str = RestartMode.FROM_FAILED_STEP) -> list[dict]:
    """What a restart in `mode` would do: every step of the version it would run, and per step

    * `plan`: "kept" (succeeded before, its output is put back, not executed), "again" (it ran
      before and runs again), "new" (never ran in this run: a step the failure stopped short
      of, or one that only the latest version has) or "may" (on a branch path not decided yet);
    * `side_effects`: the action changes data or sends;
    * `repeats_effects`: it succeeded before, with side effects, and runs again under a new
      idempotency key, so its effects happen again (from the start);
    * `will_run`: "no", "yes" or "may" (the plan in short, for the bulk preview).

    Steps already succeeded (in every iteration recorded so far) are kept by `from_failed_step`
    and by `latest_version` when it resumes; a step inside a loop runs its iterations again
    (each iteration already done is kept by the executor). Raises `WorkflowStateError` for a
    mode that cannot restart this run (no published version).
    """
    version, from_start = _restart_target(run, mode)
    records: dict[str, list[StepRun]] = {}
    for rec in StepRun.objects.filter(run=run):
        records.setdefault(rec.step_id, []).append(rec)
    preview = []
    for place in walk.places(version_definition(version)):
        step, parents = place.step, place.ancestors
        recs = records.get(step["id"], [])
        succeeded = bool(recs) and all(
            r.status in (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED) for r in recs
        )
        in_loop = any(p.get("type") == "foreach" for p in parents)
        action = registry.get(step.get("action", "")) if step.get("action") else None
        side_effects = bool(action and action.side_effects)
        if succeeded and not in_loop and not from_start:
            plan = "kept"
        elif recs:
            plan = "again"
        elif not parents:
            plan = "new"
        else:
            plan = "may"
        ran_effects = any(r.status == StepRun.Status.SUCCEEDED for r in recs)
        preview.append(
            {
                "step_id": step["id"],
                "type": step.get("type"),
                "action": step.get("action", ""),
                "side_effects": side_effects,
                "plan": plan,
                "repeats_effects": side_effects and from_start and ran_effects,
                "will_run": {"kept": "no", "may": "may"}.get(plan, "yes"),
                "status": ", ".join(sorted({r.status for r in recs})) if recs else "not run",
            }
        )
    return preview


def run_cancel(*, run: Run, user: Any = None, by: str = "") -> Run:
    """Cancel a pending, running or waiting run; a running executor stops before its next
    step, a waiting run is never claimed again.

    The lease owner's name stays: the worker may still record the end of the step it is in
    (workflows/engine/store/steps.py), whose effects may already be out.
    `by` names the canceller when it is not a user (an API key) for the stop reason.
    """
    who = by or getattr(user, "get_username", lambda: "")() or "the system"
    with transaction.atomic():
        if not run_mark_canceled(run_id=run.pk, stop_reason=f"Canceled by {who}."):
            raise WorkflowStateError(
                f"Run {run.pk} is {Run.objects.get(pk=run.pk).status}; "
                "only pending, running or waiting runs can be canceled."
            )
        run.refresh_from_db()
        serial.key_released(run)  # its message commits with the cancel
    return run
