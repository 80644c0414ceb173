"""The run inspector: runs list, run page, restart (three modes), cancel, resolve, notes,
notifications, charts, and the bulk restart's preview (bulk restart and cancel themselves:
workflows/inspector/batches.py).

Function-based views inside the admin's layout. Each is wrapped in `guarded` (the role) and
fetches what it acts on with `run_for` (backoffice/access.py), scoped to `request.environment`,
so another environment's run is a 404. Mutating views are POST-only; with HTMX they answer
with the region that changed, without it they redirect.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from backoffice.access import guarded
from backoffice.roles import can
from billing.money import AMOUNT_FIELDS, amounts_of, format_money_with_minor
from workflows.access import any_workflow_for, run_for
from workflows.builder.canvas import canvas_nodes, canvas_trigger
from workflows.definition.rows import version_definition
from workflows.engine import serial
from workflows.engine.approvals import ApprovalError, decider_problem, waiting_request
from workflows.engine.delays import waiting_on
from workflows.engine.runs import run_restart_preview
from workflows.inspector.audit import (
    run_cancel_audited,
    run_decide_audited,
    run_note_add,
    run_resolve_audited,
    run_restart_audited,
    runs_restart_bulk_preview,
)
from workflows.inspector.dashboard import dashboard_charts
from workflows.inspector.export import FORMATS, export_filename, run_document, runs_export_rows
from workflows.inspector.selectors import (
    RunFilters,
    run_audits,
    run_chain,
    run_step_runs,
    runs_page,
    workflows_for_filter,
)
from workflows.models import NotificationSubscription, RestartMode, Run, RunBatch, RunNote, StepRun
from workflows.operations.notifications import subscription_set
from workflows.services import WorkflowError, WorkflowStateError

# Worse first: the status a step shows when its loop iterations ended differently.
STEP_STATUS_RANK = ["failed", "running", "pending", "canceled", "succeeded", "skipped"]


def _context(request: HttpRequest, **extra: Any) -> dict:
    return {
        **admin.site.each_context(request),
        "can_manage": can(request.user, "runs.manage"),
        "can_note": can(request.user, "runs.note"),
        **extra,
    }


def _page(request: HttpRequest, template: str, partial: str, context: dict) -> HttpResponse:
    """The whole page, or only the `partial` region when HTMX asks for it."""
    name = f"{template}#{partial}" if request.htmx else template
    return render(request, name, context)


# --- runs list --------------------------------------------------------------------------------


def list_rows(runs: list[Run]) -> list[Run]:
    """The runs list's rows (the list, a polled row, a batch's live rows): display values made
    once in Python, so a page of 50 rows stays cheap to render."""
    base = reverse("runs:list")
    for run in runs:
        run.url = f"{base}{run.pk}/"
        run.created_text = timezone.localtime(run.created).strftime("%Y-%m-%d %H:%M:%S")
        run.finished_text = (
            timezone.localtime(run.finished_at).strftime("%H:%M:%S") if run.finished_at else "—"
        )
    return runs


@require_GET
@guarded("runs.view")
def runs_list(request: HttpRequest) -> HttpResponse:
    filters = RunFilters.from_query(request.GET)
    page = runs_page(
        environment=request.environment,
        filters=filters,
        cursor=request.GET.get("after", ""),
    )
    list_rows(page.runs)
    query = filters.as_query()
    context = _context(
        request,
        title="Runs",
        page=page,
        filters=filters,
        workflows=workflows_for_filter(environment=request.environment),
        statuses=Run.Status.values,
        query=urlencode(query),
        next_url=f"?{urlencode({**query, 'after': page.next_cursor})}" if page.next_cursor else "",
        first_page=not request.GET.get("after"),
        modes=RestartMode.choices,
        batch=_batch_shown(request),
    )
    return _page(request, "workflows/runs/list.html", "results", context)


def _batch_shown(request: HttpRequest) -> RunBatch | None:
    """The batch whose progress the list shows (`?batch=`, where a started batch leads)."""
    raw = request.GET.get("batch", "")
    if not raw.isdigit():
        return None
    return RunBatch.objects.filter(environment=request.environment, pk=int(raw)).first()


@require_GET
@guarded("runs.view")
def run_row(request: HttpRequest, run_id: int) -> HttpResponse:
    """One row of the list: running rows poll this until they end (live refresh)."""
    run = run_for(request, run_id)
    context = {"run": list_rows([run])[0], "can_manage": can(request.user, "runs.manage")}
    return render(request, "workflows/runs/list.html#row", context)


# --- export -----------------------------------------------------------------------------------


@require_GET
@guarded("runs.view")
def runs_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The runs the list shows for the same query string, as a streamed CSV or JSON file."""
    filters = RunFilters.from_query(request.GET)
    if filters.errors:
        # Nothing to download: the list itself, with its errors beside the filters.
        response = runs_list(request)
        response.status_code = 400
        return response
    write, content_type, extension = FORMATS[fmt]
    rows = runs_export_rows(environment=request.environment, filters=filters)
    response = StreamingHttpResponse(write(rows), content_type=content_type)
    filename = export_filename(environment=request.environment, extension=extension)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@guarded("runs.view")
def run_export_json(request: HttpRequest, run_id: int) -> HttpResponse:
    """One run as a JSON download: steps, attempts, params and outputs as stored, event."""
    run = run_for(request, run_id)
    response = JsonResponse(run_document(run), json_dumps_params={"indent": 2})
    filename = f"run-{run.pk}-{request.environment.slug}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


# --- run page ---------------------------------------------------------------------------------


def _admin_url(object_type: str, object_id: str) -> str:
    try:
        return reverse(f"admin:billing_{object_type.replace('_', '')}_change", args=[object_id])
    except NoReverseMatch:
        return ""


def _changes(changed: list) -> list[dict]:
    """Each changed object with the fields whose value differs and a link to it."""
    out = []
    for entry in changed or []:
        if not isinstance(entry, dict):
            continue
        before = entry.get("before") or {}
        after = entry.get("after") or {}
        keys = sorted(set(before) | set(after))
        currency = str(after.get("currency") or before.get("currency") or "")
        fields = [
            {
                "name": k,
                "before": _show(before.get(k), k, currency),
                "after": _show(after.get(k), k, currency),
            }
            for k in keys
            if before.get(k) != after.get(k)
        ]
        out.append(
            {
                "object": entry.get("object", ""),
                "id": entry.get("id", ""),
                "created": not before,
                "fields": fields,
                "url": _admin_url(str(entry.get("object", "")), str(entry.get("id", ""))),
            }
        )
    return out


def _show(value: Any, name: str = "", currency: str = "") -> str:
    if value is None:
        return "—"
    if name in AMOUNT_FIELDS and currency and type(value) is int:
        return format_money_with_minor(value, currency)  # "20.00 USD (2000)"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _attempts(log: list) -> list[dict]:
    """Every attempt with its own timing; an attempt left running before a later one started
    was interrupted (its worker stopped)."""
    rows = []
    for i, entry in enumerate(log or []):
        started, finished = _when(entry.get("started_at")), _when(entry.get("finished_at"))
        status = entry.get("status") or ""
        if status == StepRun.Status.RUNNING and i < len(log) - 1:
            status = "interrupted"
        rows.append(
            {
                **entry,
                "status": status,
                "started": started,
                "finished": finished,
                "duration_ms": round((finished - started).total_seconds() * 1000)
                if started and finished
                else None,
            }
        )
    return rows


def _when(value: Any):
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _step_rows(step_runs: list[StepRun]) -> list[dict]:
    rows = []
    for s in step_runs:
        duration = (
            (s.finished_at - s.started_at).total_seconds() * 1000
            if s.started_at and s.finished_at
            else None
        )
        rows.append(
            {
                "record": s,
                "params": _pretty(s.params) if s.params is not None else "",
                "output": _pretty(s.output) if s.output is not None else "",
                "changes": _changes(s.changed_objects),
                "duration_ms": round(duration) if duration is not None else None,
                "attempts": _attempts(s.attempt_log),
            }
        )
    return rows


def _canvas_runs(step_runs: list[StepRun]) -> dict[str, dict]:
    """One entry per step for the canvas; a looped step shows its worst iteration."""
    by_step: dict[str, dict] = {}
    for s in step_runs:
        entry = {
            "status": s.status,
            "attempts": s.attempts,
            "branch_chosen": s.branch_chosen,
            "error": s.error,
        }
        current = by_step.get(s.step_id)
        if current is None or _rank(s.status) < _rank(current["status"]):
            by_step[s.step_id] = entry
    return by_step


def _rank(status: str) -> int:
    return STEP_STATUS_RANK.index(status) if status in STEP_STATUS_RANK else len(STEP_STATUS_RANK)


def _run_context(request: HttpRequest, run: Run, **extra: Any) -> dict:
    step_runs = run_step_runs(run=run)
    waiting = waiting_on(run)
    # Approve and Reject show to the approvers only (the server checks again on POST).
    can_decide = (
        waiting is not None
        and "approval" in waiting
        and not decider_problem(waiting_request(run), user=request.user)
    )
    definition = version_definition(run.version)
    return _context(
        request,
        title=f"Run {run.pk}",
        run=run,
        trigger_card=canvas_trigger(definition),
        nodes=canvas_nodes(
            definition,
            step_runs=_canvas_runs(step_runs),
            step_url=lambda step_id: f"#step-{step_id}",
        ),
        steps=_step_rows(step_runs),
        trigger_json=_pretty(run.trigger),
        trigger_amounts=amounts_of(((run.trigger or {}).get("data") or {}).get("object") or {}),
        chain=run_chain(environment=request.environment, run=run),
        audits=run_audits(run=run),
        notes=RunNote.objects.filter(run=run).select_related("user", "api_key"),
        error_json=_pretty(run.error) if run.error else "",
        waiting=waiting,
        can_decide=can_decide,
        serialized=serial.note_of(run),
        **extra,
    )


@require_GET
@guarded("runs.view")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for(request, run_id)
    return _page(request, "workflows/runs/detail.html", "run-body", _run_context(request, run))


# --- restart and cancel -----------------------------------------------------------------------


def _mode(data) -> tuple[str, str]:
    """The restart mode asked for (the default when none) and an error naming `mode`."""
    mode = data.get("mode") or RestartMode.FROM_FAILED_STEP
    if mode not in RestartMode.values:
        allowed = ", ".join(RestartMode.values)
        return RestartMode.FROM_FAILED_STEP, f"Unknown restart mode {mode!r}: use one of {allowed}."
    return mode, ""


@require_GET
@guarded("runs.manage")
def run_restart_preview_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """The restart's preview for the mode chosen; choosing another mode reloads it (HTMX)."""
    run = run_for(request, run_id)
    mode, mode_error = _mode(request.GET)
    restartable = run.status == Run.Status.FAILED
    steps: list[dict] = []
    if restartable and not mode_error:
        try:
            steps = run_restart_preview(run=run, mode=mode)
        except WorkflowStateError as exc:
            mode_error = exc.message
    again = [s for s in steps if s["plan"] != "kept"]
    context = _context(
        request,
        title=f"Restart run {run.pk}?",
        run=run,
        steps=steps,
        again=again,
        mode=mode,
        mode_label=RestartMode(mode).label.lower(),
        modes=RestartMode.choices,
        mode_error=mode_error,
        side_effects=any(s["side_effects"] for s in again),
        repeats=[s for s in steps if s["repeats_effects"]],
        restartable=restartable,
    )
    return _page(request, "workflows/runs/restart_preview.html", "preview", context)


@require_POST
@guarded("runs.manage")
def run_restart_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for(request, run_id)
    mode, mode_error = _mode(request.POST)
    if mode_error:
        return _after_action(request, run, error=mode_error)
    try:
        run = run_restart_audited(run=run, user=request.user, mode=mode)
    except WorkflowStateError as exc:
        return _after_action(request, run, error=exc.message)
    done = {
        RestartMode.FROM_FAILED_STEP: "at its failed step",
        RestartMode.FROM_START: "from the start",
        RestartMode.LATEST_VERSION: f"on version {run.version.number}",
    }[mode]
    return _after_action(request, run, notice=f"Run {run.pk} restarted {done}.")


@require_http_methods(["GET", "POST"])
@guarded("runs.manage")
def run_resolve_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """Resolve a failed run without restarting it; the note is required."""
    run = run_for(request, run_id)
    note, error = "", ""
    if request.method == "POST":
        note = request.POST.get("note", "")
        try:
            run = run_resolve_audited(run=run, note=note, user=request.user)
        except WorkflowError as exc:
            error = exc.message
        else:
            return _after_action(request, run, notice=f"Run {run.pk} resolved.")
    context = _context(
        request, title=f"Resolve run {run.pk}?", run=run, note=note, note_error=error
    )
    return _page(request, "workflows/runs/resolve.html", "resolve-form", context)


@require_POST
@guarded("runs.note")
def run_note_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """Add a note to a run (any status); an empty one is refused, naming the field."""
    run = run_for(request, run_id)
    body = request.POST.get("body", "")
    error = ""
    try:
        run_note_add(run=run, body=body, user=request.user)
    except WorkflowError as exc:
        error = exc.message
    if request.htmx:
        context = _context(
            request,
            run=run,
            notes=RunNote.objects.filter(run=run).select_related("user", "api_key"),
            note_error=error,
            body=body if error else "",
        )
        return render(request, "workflows/runs/detail.html#notes", context)
    if error:
        messages.error(request, f"body: {error}")
    else:
        messages.success(request, "Note added.")
    return redirect("runs:detail", run_id=run.pk)


@require_POST
@guarded("runs.approve")
def run_decide_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """Approve or reject the approval a waiting run waits on, with a note (required to
    reject); only its approvers may (`approvals.decider_problem`)."""
    run = run_for(request, run_id)
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        return _after_action(request, run, error="decision: choose approve or reject.")
    try:
        approval = run_decide_audited(
            run=run, approve=decision == "approve", note=request.POST.get("note"), user=request.user
        )
    except ApprovalError as exc:
        return _after_action(request, run, error=exc.message)
    except WorkflowError as exc:
        return _after_action(request, run, error=f"note: {exc.message}")
    return _after_action(request, run, notice=f"Run {run.pk}: {approval.decision}.")


@require_POST
@guarded("runs.manage")
def run_cancel_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for(request, run_id)
    try:
        run = run_cancel_audited(run=run, user=request.user)
    except WorkflowStateError as exc:
        return _after_action(request, run, error=exc.message)
    return _after_action(request, run, notice=f"Run {run.pk} canceled.")


def _after_action(
    request: HttpRequest, run: Run, *, notice: str = "", error: str = ""
) -> HttpResponse:
    if request.htmx:
        run.refresh_from_db()
        context = _run_context(request, run, notice=notice, action_error=error)
        response = render(request, "workflows/runs/detail.html#run-body", context)
        # The notes sit outside the run's body (it polls); a resolve adds one: swapped too.
        notes = render(request, "workflows/runs/detail.html#notes", {**context, "oob": True})
        response.content += notes.content
        response["HX-Retarget"] = "#run-body"
        response["HX-Reswap"] = "outerHTML"
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("runs:detail", run_id=run.pk)


# --- bulk restart preview ---------------------------------------------------------------------


@require_GET
@guarded("runs.manage")
def runs_bulk_restart_preview(request: HttpRequest) -> HttpResponse:
    filters = RunFilters.from_query(request.GET)
    preview = runs_restart_bulk_preview(environment=request.environment, filters=filters)
    context = _context(
        request,
        title="Restart failed runs?",
        preview=preview,
        filters=filters,
        filter_fields=filters.as_query(),
        query=urlencode(filters.as_query()),
        modes=RestartMode.choices,
    )
    return _page(request, "workflows/runs/bulk_preview.html", "preview", context)


# --- notifications ----------------------------------------------------------------------------


def _notification_context(request: HttpRequest) -> dict:
    subscribed = set(
        NotificationSubscription.objects.filter(
            user=request.user, environment=request.environment
        ).values_list("workflow_id", flat=True)
    )
    workflows = workflows_for_filter(environment=request.environment)
    return _context(
        request,
        title="Failure notifications",
        all_on=None in subscribed,
        rows=[{"workflow": w, "on": w.pk in subscribed} for w in workflows],
        has_email=bool(request.user.email),
    )


@require_GET
@guarded("runs.manage")
def notification_settings(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "workflows/runs/notifications.html", "subs", _notification_context(request)
    )


@require_POST
@guarded("runs.manage")
def notification_update(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("workflow", "")
    workflow = None
    if raw not in ("", "all"):
        workflow = any_workflow_for(request, raw, capability="runs.manage")
    subscription_set(
        user=request.user,
        environment=request.environment,
        workflow=workflow,
        on=request.POST.get("on") == "1",
    )
    if request.htmx:
        return render(
            request, "workflows/runs/notifications.html#subs", _notification_context(request)
        )
    return redirect("runs:notifications")


# --- dashboard --------------------------------------------------------------------------------


@require_GET
@guarded("runs.view")
def runs_dashboard(request: HttpRequest) -> HttpResponse:
    context = _context(
        request, title="Runs dashboard", charts=dashboard_charts(environment=request.environment)
    )
    # HTMX: only the charts, for pages that embed them (workflows/runs/_dashboard_lazy.html).
    template = "workflows/runs/_dashboard.html" if request.htmx else "workflows/runs/dashboard.html"
    return render(request, template, context)
