"""Bulk restart and cancel from the runs list: start a run batch, show its progress.

The list's bulk bar posts the selected rows (`runs`) or, with "all matching", the list's filter
(`scope=filter`) to `runs_batch_start`. A filter-wide batch is confirmed first (a restart with
the grouped preview, a cancel with its count), then created; the job runs on the workers
(workflows/batches/jobs.py). The answer is the progress panel, which polls
`runs_batch_progress` every second: a bar, then the summary, and, out of band, the rows of the
page whose run the batch changed since the last poll, so the list never shows a restarted run
as failed.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from backoffice.access import guarded
from backoffice.roles import can
from billing.errors import InvalidRequestError
from workflows.access import run_batch_for
from workflows.batches.jobs import APPLIES_TO, batch_create
from workflows.batches.selection import check_action, check_run_ids
from workflows.inspector.audit import runs_restart_bulk_preview
from workflows.inspector.selectors import RunFilters, runs_by_ids, runs_filtered
from workflows.inspector.views import list_rows
from workflows.models import RestartMode, RunBatch, RunBatchItem

# Rows changed this long before the last poll are sent again: an item committed just after a
# poll read the items may carry an earlier `applied_at`.
POLL_OVERLAP = timedelta(seconds=3)


@require_POST
@guarded("runs.manage")
def runs_batch_start(request: HttpRequest) -> HttpResponse:
    data = request.POST
    filters = RunFilters.from_query(data)
    try:
        # The bulk bar sends its mode select with either button; only a restart reads it.
        restart = data.get("action") == RunBatch.Action.RESTART
        mode = check_action(data.get("action"), data.get("mode") if restart else "")
        action = data["action"]
        if data.get("scope") == "filter":
            if filters.errors:
                field, message = next(iter(filters.errors.items()))
                raise InvalidRequestError(f"{field}: {message}", param=field)
            if data.get("confirmed") != "1":
                return _confirm(request, action, mode, filters)
            runs, selection = None, filters.as_query()
        else:
            ids = [int(v) if v.isdigit() else v for v in data.getlist("runs")]
            if not ids:
                raise InvalidRequestError("Select at least one run.", param="runs")
            runs = check_run_ids(environment=request.environment, runs=ids)
            selection = None
    except InvalidRequestError as exc:
        return _panel_error(request, exc.message)
    batch = batch_create(
        environment=request.environment,
        action=action,
        runs=runs,
        filter=selection,
        mode=mode,
        user=request.user,
    )
    if not request.htmx:
        query = urlencode({**filters.as_query(), "batch": batch.pk})
        return redirect(f"{reverse('runs:list')}?{query}")
    return render(request, "workflows/runs/_batch.html#panel", batch_context(batch))


def _confirm(request: HttpRequest, action: str, mode: str, filters: RunFilters) -> HttpResponse:
    """The confirmation of a filter-wide batch: what it would touch, and the button."""
    context = {
        "action": action,
        "mode": mode or RestartMode.FROM_FAILED_STEP,
        "modes": RestartMode.choices,
        "filters": filters,
        "filter_fields": filters.as_query(),
    }
    if action == RunBatch.Action.RESTART:
        context["preview"] = runs_restart_bulk_preview(
            environment=request.environment, filters=filters
        )
        context["count"] = context["preview"].total
    else:
        context["count"] = (
            runs_filtered(environment=request.environment, filters=filters)
            .filter(status__in=APPLIES_TO[action])
            .count()
        )
    return render(request, "workflows/runs/_batch.html#confirm", context)


def _panel_error(request: HttpRequest, message: str) -> HttpResponse:
    response = render(request, "workflows/runs/_batch.html#error", {"message": message})
    response.status_code = 400
    return response


@require_GET
@guarded("runs.view")
def runs_batch_progress(request: HttpRequest, batch_id: int) -> HttpResponse:
    """The progress panel again, and the shown rows whose run the batch changed since `since`."""
    batch = run_batch_for(request, batch_id)
    since = parse_datetime(request.GET.get("since", "")) or batch.created
    shown = [int(v) for v in request.GET.getlist("shown") if v.isdigit()]
    changed = list(
        RunBatchItem.objects.filter(
            batch=batch, run_id__in=shown, applied_at__gte=since - POLL_OVERLAP
        ).values_list("run_id", flat=True)
    )
    rows = list_rows(runs_by_ids(environment=request.environment, ids=changed)) if changed else []
    context = {
        **batch_context(batch),
        "rows": rows,
        "can_manage": can(request.user, "runs.manage"),
    }
    return render(request, "workflows/runs/_batch.html#panel", context)


def batch_context(batch: RunBatch) -> dict:
    processed = batch.done + batch.skipped + batch.failed
    finished = batch.status in (RunBatch.Status.SUCCEEDED, RunBatch.Status.FAILED)
    return {
        "batch": batch,
        "processed": processed,
        "percent": processed * 100 // batch.total if batch.total else (100 if finished else 0),
        "finished": finished,
        "reasons": sorted(batch.reasons.items(), key=lambda kv: -kv[1]),
        "since": timezone.now().isoformat(),
        "verb": "Restart" if batch.action == RunBatch.Action.RESTART else "Cancel",
    }
