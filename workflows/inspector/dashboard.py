"""The runs dashboard: runs per day by status and failure rate per workflow, as server-side SVG.

Two grouped queries over the last 30 days; the geometry (bars, axes, labels) is computed here
and the template only writes it out as `<svg>` elements, so no JavaScript is needed to see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import Environment
from workflows.models import Run

DAYS = 30
STATUS_ORDER = ["succeeded", "failed", "resolved", "canceled", "running", "waiting", "pending"]
STATUS_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "resolved": "#6a1b9a",  # failed, then closed by an operator without a restart
    "canceled": "#757575",
    "running": "#1565c0",
    "waiting": "#00838f",
    "pending": "#f9a825",
}

# A resolved run failed too: the failure rate counts it.
FAILURES = [Run.Status.FAILED, Run.Status.RESOLVED]

# Chart geometry (SVG user units).
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 34
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH = 18, 8, 220


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    legend: list[tuple[str, str, int]] = field(default_factory=list)
    empty: bool = False


@dataclass
class WorkflowRate:
    workflow: str
    workflow_id: int
    total: int
    failed: int

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


def runs_per_day(*, environment: Environment, today: date | None = None) -> dict:
    """{day: {status: count}} for the last DAYS days (every day present, zero-filled)."""
    today = today or timezone.localdate()
    first = today - timedelta(days=DAYS - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))
    rows = (
        Run.objects.filter(environment=environment, dry_run=False, created__gte=since)
        .annotate(day=TruncDate("created"))
        .values("day", "status")
        .annotate(n=Count("id"))
    )
    days = {first + timedelta(days=i): dict.fromkeys(STATUS_ORDER, 0) for i in range(DAYS)}
    for row in rows:
        day = row["day"]
        if day in days:
            days[day][row["status"]] = row["n"]
    return days


def failure_rates(*, environment: Environment, today: date | None = None) -> list[WorkflowRate]:
    today = today or timezone.localdate()
    first = today - timedelta(days=DAYS - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))
    rows = (
        Run.objects.filter(environment=environment, dry_run=False, created__gte=since)
        .values("workflow_id", "workflow__name")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(status__in=FAILURES)))
        .order_by("workflow__name")
    )
    rates = [
        WorkflowRate(
            workflow=r["workflow__name"],
            workflow_id=r["workflow_id"],
            total=r["total"],
            failed=r["failed"],
        )
        for r in rows
    ]
    return sorted(rates, key=lambda r: (-r.rate, r.workflow))


def _nice_max(value: int) -> int:
    """A round axis maximum at or above `value` (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def day_chart(days: dict) -> Chart:
    chart = Chart(width=WIDTH, height=HEIGHT)
    totals = [sum(counts.values()) for counts in days.values()]
    peak = _nice_max(max(totals, default=0))
    chart.empty = not any(totals)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.75, 1)
    base = TOP + plot_h
    chart.lines.append((LEFT, base, WIDTH - RIGHT, base))
    for fraction in (0.5, 1.0):
        y = base - plot_h * fraction
        chart.lines.append((LEFT, y, WIDTH - RIGHT, y))
        chart.labels.append(Label(LEFT - 4, y + 4, f"{peak * fraction:g}", "end"))
    chart.labels.append(Label(LEFT - 4, base + 4, "0", "end"))
    for index, (day, counts) in enumerate(days.items()):
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = base
        for status in STATUS_ORDER:
            n = counts.get(status, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            chart.rects.append(
                Rect(
                    round(x, 1),
                    round(y, 1),
                    round(bar_w, 1),
                    round(h, 1),
                    STATUS_COLOURS[status],
                    f"{day.isoformat()}: {n} {status}",
                )
            )
        if index % 5 == 0 or index == len(days) - 1:
            chart.labels.append(Label(x + bar_w / 2, base + 16, day.strftime("%b %d"), "middle"))
    return chart


def rate_chart(rates: list[WorkflowRate]) -> Chart:
    height = TOP + max(len(rates), 1) * (BAR_HEIGHT + BAR_GAP) + 20
    chart = Chart(width=WIDTH, height=height, empty=not rates)
    plot_w = WIDTH - LABEL_WIDTH - 130
    for index, r in enumerate(rates):
        y = TOP + index * (BAR_HEIGHT + BAR_GAP)
        chart.labels.append(Label(LABEL_WIDTH - 6, y + BAR_HEIGHT - 5, r.workflow[:32], "end"))
        chart.rects.append(Rect(LABEL_WIDTH, y, plot_w, BAR_HEIGHT, "#eeeeee", f"{r.total} runs"))
        if r.failed:
            chart.rects.append(
                Rect(
                    LABEL_WIDTH,
                    y,
                    round(max(plot_w * r.rate, 1), 1),
                    BAR_HEIGHT,
                    STATUS_COLOURS["failed"],
                    f"{r.failed} of {r.total} runs failed",
                )
            )
        chart.labels.append(
            Label(
                LABEL_WIDTH + plot_w + 6,
                y + BAR_HEIGHT - 5,
                f"{r.rate * 100:.1f}% ({r.failed}/{r.total})",
            )
        )
    return chart


def dashboard_charts(*, environment: Environment, today: date | None = None) -> dict:
    days = runs_per_day(environment=environment, today=today)
    rates = failure_rates(environment=environment, today=today)
    totals = {s: sum(c[s] for c in days.values()) for s in STATUS_ORDER}
    per_day = day_chart(days)
    per_day.legend = [(s, STATUS_COLOURS[s], totals[s]) for s in STATUS_ORDER]
    return {
        "per_day": per_day,
        "rates": rate_chart(rates),
        "rate_rows": rates,
        "totals": totals,
    }
