"""The builder's Backtest panel: start a backtest of the workflow being edited, follow it, read
its report, open a sample on the canvas.

The panel posts the range and the version to `backtest_start_view`, which checks them as the
API does (`workflows/backtests/requests.py`) and starts the job on the workers; the answer is
the report region, which polls `backtest_view` every second until the job is done: a progress
bar, then the numbers, two inline SVG bar charts (runs per path, runs per step) and the money
each step would move. A sample opens on the canvas as the test run of its event on the
backtest's definition: the same walk, so the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from billing.events import event_envelope
from billing.models import Event
from billing.money import format_money
from workflows.access import workflow_for
from workflows.backtests.jobs import backtest_create
from workflows.backtests.requests import DEFAULT_DAYS, BacktestRequestError, check_request
from workflows.builder.test_run import workflow_test_run
from workflows.builder.views import MANAGE, _builder_context, _editing_version, _respond
from workflows.definition.rows import version_definition
from workflows.models import Backtest, Workflow

REPORT = "workflows/_panel_backtest.html#report"
# The charts' geometry, in SVG user units: a label column, then the bars.
LABEL_WIDTH = 150
BAR_SPACE = 170
BAR_HEIGHT = 18
BAR_GAP = 6


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    y: int
    width: int
    note: str = ""


def bars(items: list[tuple[str, int, str]]) -> tuple[list[Bar], int]:
    """Horizontal bars scaled to the largest value, and the chart's height."""
    top = max((value for _, value, _ in items), default=0) or 1
    drawn = [
        Bar(
            label=label,
            value=value,
            y=index * (BAR_HEIGHT + BAR_GAP),
            width=max(1 if value else 0, round(BAR_SPACE * value / top)),
            note=note,
        )
        for index, (label, value, note) in enumerate(items)
    ]
    return drawn, max(len(drawn) * (BAR_HEIGHT + BAR_GAP), BAR_HEIGHT)


def report_context(backtest: Backtest) -> dict:
    total = backtest.events_total or 0
    paths = sorted(backtest.paths.items(), key=lambda item: (-item[1], item[0]))
    steps = [
        (
            step_id,
            entry["would_run"],
            ", ".join(
                format_money(amount, currency)
                for currency, amount in sorted(entry["amounts"].items())
            ),
        )
        for step_id, entry in backtest.steps.items()
    ]
    path_bars, path_height = bars([(name, count, "") for name, count in paths])
    step_bars, step_height = bars(steps)
    return {
        "backtest": backtest,
        "finished": backtest.status in (Backtest.Status.DONE, Backtest.Status.FAILED),
        "percent": round(100 * backtest.events_scanned / total) if total else 0,
        "path_bars": path_bars,
        "path_height": path_height,
        "step_bars": step_bars,
        "step_height": step_height,
        "moves_money": any(note for _, _, note in steps),
        "chart": {"label": LABEL_WIDTH, "bar": BAR_HEIGHT, "width": LABEL_WIDTH + BAR_SPACE + 60},
    }


def _backtest_of(workflow: Workflow, backtest_id: int) -> Backtest:
    return get_object_or_404(Backtest, pk=backtest_id, workflow=workflow)


def _form_defaults(workflow: Workflow) -> dict:
    today = timezone.localdate()
    return {
        "since": (today - timedelta(days=DEFAULT_DAYS)).isoformat(),
        "until": today.isoformat(),
        "version": "",
        "has_draft": workflow.draft_version_id is not None,
        "published": workflow.published_version,
    }


def _panel(request: HttpRequest, workflow: Workflow, **extra: object) -> HttpResponse:
    definition = version_definition(_editing_version(workflow))
    latest = workflow.backtests.order_by("-created", "-id").first()
    if "backtest" not in extra and latest is not None:
        extra.update(report_context(latest))
    extra.setdefault("form", _form_defaults(workflow))
    context = _builder_context(request, workflow, definition, panel="backtest", **extra)
    return _respond(request, context)


def _day(value: str, *, end: bool) -> str | None:
    """A date input's day as an ISO timestamp (its start, or for `until` the next day's start:
    the range takes the whole day), or the text as typed for the checks to refuse."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return value
    start = datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=UTC)
    return start.isoformat()


@require_http_methods(["GET", "POST"])
@staff_member_required
def backtest_start_view(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    if request.method == "GET":
        return _panel(request, workflow)
    form = {
        **_form_defaults(workflow),
        **{name: request.POST.get(name, "") for name in ("since", "until", "version")},
    }
    try:
        asked = check_request(
            workflow,
            since=_day(form["since"], end=False),
            until=_day(form["until"], end=True),
            version=form["version"] or None,
        )
    except BacktestRequestError as exc:
        return _panel(request, workflow, form=form, backtest_error=exc)
    backtest = backtest_create(
        workflow=workflow,
        definition=asked.definition,
        version_number=asked.version_number,
        since=asked.since,
        until=asked.until,
        user=request.user,
    )
    return _panel(request, workflow, form=form, **report_context(backtest))


@require_GET
@staff_member_required
def backtest_view(request: HttpRequest, workflow_id: int, backtest_id: int) -> HttpResponse:
    """The report region (polled while the job runs); the whole panel without HTMX."""
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    backtest = _backtest_of(workflow, backtest_id)
    if not request.htmx:
        return _panel(request, workflow, **report_context(backtest))
    context = {**report_context(backtest), "workflow": workflow, "wf_url": _wf_url(workflow)}
    return render(request, REPORT, context)


@require_GET
@staff_member_required
def backtest_sample_view(
    request: HttpRequest, workflow_id: int, backtest_id: int, event_id: str
) -> HttpResponse:
    """A sample's event walked on the backtest's definition as a test run, drawn on the canvas
    with the panel's test-run result."""
    workflow = workflow_for(request, workflow_id, capability=MANAGE)
    backtest = _backtest_of(workflow, backtest_id)
    if not any(sample["event"] == event_id for sample in backtest.samples):
        raise Http404("Not a sample of this backtest.")
    event = get_object_or_404(
        Event.objects.select_related("environment"), pk=event_id, environment=request.environment
    )
    result = workflow_test_run(
        workflow_id=workflow.pk,
        definition=backtest.definition,
        trigger=event_envelope(event),
        environment=request.environment,
    )
    context = _builder_context(
        request,
        workflow,
        backtest.definition,
        step_runs=result.steps,
        panel="backtest",
        test_result=result,
        sample_event=event,
        form=_form_defaults(workflow),
        **report_context(backtest),
    )
    return _respond(request, context, oob=True)


def _wf_url(workflow: Workflow) -> str:
    return reverse("workflows:builder", args=[workflow.pk])
