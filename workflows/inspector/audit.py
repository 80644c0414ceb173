"""Audited run transitions for the inspector and the API: start, restart, cancel, resolve, the
notes on a run, and the bulk restart's preview.

Each wraps the engine's transition (`workflows.engine.runs`) and writes its RunAudit row in the same
transaction, so the log never shows a restart that did not happen (or misses one that did).
Bulk restart and cancel are run batches, applied by a job on the workers (workflows/batches/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform

from billing.models import ApiKey, Environment
from workflows.engine.approvals import approval_decide
from workflows.engine.runs import (
    run_cancel,
    run_resolve,
    run_restart,
    run_restart_preview,
    run_start_manual,
)
from workflows.inspector.selectors import RunFilters, runs_filtered
from workflows.models import Approval, RestartMode, Run, RunAudit, RunNote, Workflow, api_key_actor
from workflows.services import WorkflowError, WorkflowStateError


def run_audit_record(
    *, run: Run, action: str, user: Any = None, api_key: ApiKey | None = None, note: str = ""
) -> RunAudit:
    return RunAudit.objects.create(
        run=run,
        action=action,
        user=user if getattr(user, "pk", None) else None,
        api_key=api_key,
        note=note[:500],
    )


def run_start_manual_audited(*, workflow: Workflow, input: Any, api_key: ApiKey) -> Run:
    """Start a manual run through the API: the run's history names the key that started it
    (a back-office user is named by the run's `started_by`)."""
    with transaction.atomic():
        run = run_start_manual(workflow=workflow, input=input)
        run_audit_record(run=run, action=RunAudit.Action.START, api_key=api_key)
    return run


def run_restart_audited(
    *,
    run: Run,
    user: Any = None,
    api_key: ApiKey | None = None,
    note: str = "",
    mode: str = RestartMode.FROM_FAILED_STEP,
) -> Run:
    """Restart `run` (in `mode`) on behalf of a back-office `user` or, through the API, of
    `api_key`."""
    with transaction.atomic():
        restarted = run_restart(run=run, user=user, mode=mode)
        run_audit_record(
            run=restarted, action=RunAudit.Action.RESTART, user=user, api_key=api_key, note=note
        )
    return restarted


def run_cancel_audited(*, run: Run, user: Any = None, api_key: ApiKey | None = None) -> Run:
    """Cancel `run` on behalf of a back-office `user` or, through the API, of `api_key`."""
    with transaction.atomic():
        by = api_key_actor(api_key) if api_key is not None else ""
        canceled = run_cancel(run=run, user=user, by=by)
        run_audit_record(run=canceled, action=RunAudit.Action.CANCEL, user=user, api_key=api_key)
    return canceled


NOTE_MAX_CHARS = 5000


def _note_body(body: Any, param: str) -> str:
    text = str(body or "").strip()
    if not text:
        raise WorkflowError(
            "Write a note: it may not be empty.", code="parameter_missing", param=param
        )
    if len(text) > NOTE_MAX_CHARS:
        raise WorkflowError(
            f"A note is at most {NOTE_MAX_CHARS} characters; this one has {len(text)}.",
            code="parameter_invalid",
            param=param,
        )
    return text


def run_note_add(
    *, run: Run, body: Any, user: Any = None, api_key: ApiKey | None = None, param: str = "body"
) -> RunNote:
    """A note on `run` (any status) by a back-office `user` or an API key. An empty note is
    refused, naming `param` (the form's or the API's field)."""
    return _note_create(run, RunNote.Kind.NOTE, _note_body(body, param), user, api_key)


def _note_create(run: Run, kind: str, body: str, user: Any, api_key: ApiKey | None) -> RunNote:
    return RunNote.objects.create(
        run=run,
        kind=kind,
        body=body,
        user=user if getattr(user, "pk", None) else None,
        api_key=api_key,
    )


def run_resolve_audited(
    *, run: Run, note: Any, user: Any = None, api_key: ApiKey | None = None, param: str = "note"
) -> Run:
    """Close a failed run without restarting it: the failed -> resolved transition, its
    resolution note and its RunAudit row commit together (or none of them)."""
    body = _note_body(note, param)
    with transaction.atomic():
        resolved = run_resolve(run=run)
        _note_create(resolved, RunNote.Kind.RESOLUTION, body, user, api_key)
        run_audit_record(
            run=resolved, action=RunAudit.Action.RESOLVE, user=user, api_key=api_key, note=body
        )
    return resolved


def run_decide_audited(
    *,
    run: Run,
    approve: bool,
    note: Any = None,
    user: Any = None,
    api_key: ApiKey | None = None,
    param: str = "note",
) -> Approval:
    """Approve or reject the approval `run` waits on: the decision, the run's wake-up and its
    RunAudit row commit together (or none of them). A note is optional for an approval and
    required for a rejection (`param` names the field); raises ApprovalError otherwise."""
    text = str(note or "").strip()
    if text:
        text = _note_body(text, param)  # its length
    with transaction.atomic():
        approval = approval_decide(run=run, approve=approve, note=text, user=user, api_key=api_key)
        action = RunAudit.Action.APPROVE if approve else RunAudit.Action.REJECT
        run_audit_record(run=run, action=action, user=user, api_key=api_key, note=text)
    return approval


@dataclass
class BulkPreviewGroup:
    workflow: str
    version: int | None
    failed_step: str
    count: int
    steps: list[dict]


@dataclass
class BulkPreview:
    total: int
    groups: list[BulkPreviewGroup]
    side_effect_runs: int
    recursion_runs: int


def runs_restart_bulk_preview(
    *,
    environment: Environment,
    filters: RunFilters,
    mode: str = RestartMode.FROM_FAILED_STEP,
) -> BulkPreview:
    """Counts for the bulk restart preview (in `mode`), grouped by workflow version and failed
    step.

    Runs of one version failing at one step re-run the same steps, so one sample run per
    group gives the group's step list, and side effects are counted per group. A group the
    mode cannot restart (no published version) lists no steps; its restarts will say why.
    """
    failed = runs_filtered(environment=environment, filters=filters).filter(
        status=Run.Status.FAILED
    )
    rows = (
        failed.annotate(_step=KeyTextTransform("step", "error"))
        .values("workflow__name", "version_id", "version__number", "_step")
        .annotate(n=Count("id"), recursion=Count("id", filter=Q(error__type="recursion")))
        .order_by("-n")[:50]
    )
    groups: list[BulkPreviewGroup] = []
    side_effects = 0
    recursion = 0
    for row in rows:
        sample = failed.filter(version_id=row["version_id"])
        sample = (
            sample.filter(error__step=row["_step"])
            if row["_step"]
            else sample.filter(Q(error__isnull=True) | Q(error__step__isnull=True))
        )
        sample_run = sample.select_related("version").first()
        try:
            steps = run_restart_preview(run=sample_run, mode=mode) if sample_run else []
        except WorkflowStateError:
            steps = []
        again = [s for s in steps if s["will_run"] != "no"]
        if any(s["side_effects"] for s in again):
            side_effects += row["n"]
        recursion += row["recursion"]
        groups.append(
            BulkPreviewGroup(
                workflow=row["workflow__name"],
                version=row["version__number"],
                failed_step=row["_step"] or "",
                count=row["n"],
                steps=again,
            )
        )
    total = failed.count()
    return BulkPreview(
        total=total, groups=groups, side_effect_runs=side_effects, recursion_runs=recursion
    )
