"""Run reads for the inspector: filters, keyset pages, one run with its steps.

Every query starts from an environment; nothing here can return another environment's run.
Pages are keyset pages on (created, id), newest first, so page 20,000 costs what page 1 costs:
the cursor is the last row's (created, id), and `created <= c` gives the index a range start.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import CharField, ExpressionWrapper, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.models import Environment, Event
from workflows.models import Run, RunAudit, StepRun, Workflow

PAGE_SIZE = 50
# The object filter looks at this many of an object's latest runs (each way).
OBJECT_RUNS_CAP = 5000


@dataclass
class RunFilters:
    """The inspector's filters; empty values mean "any"."""

    workflow: int | None = None
    status: str = ""
    event_type: str = ""
    event_id: str = ""
    object_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_query(cls, data: Any) -> RunFilters:
        """Read filters from a QueryDict; bad values are dropped and reported in `errors`."""
        f = cls()
        raw_workflow = (data.get("workflow") or "").strip()
        if raw_workflow:
            if raw_workflow.isdigit():
                f.workflow = int(raw_workflow)
            else:
                f.errors["workflow"] = "Choose a workflow from the list."
        status = (data.get("status") or "").strip()
        if status in Run.Status.values:
            f.status = status
        elif status:
            f.errors["status"] = f"Unknown status {status!r}."
        f.event_type = (data.get("event_type") or "").strip()[:80]
        f.event_id = (data.get("event_id") or "").strip()[:40]
        f.object_id = (data.get("object_id") or "").strip()[:40]
        for name in ("since", "until"):
            raw = (data.get(name) or "").strip()
            if not raw:
                continue
            try:
                value = parse_datetime(raw) or parse_datetime(f"{raw}T00:00:00")
            except ValueError:  # well formed but impossible, such as 2026-13-45
                value = None
            if value is None:
                f.errors[name] = "Use a date (2026-01-31) or a date and time (2026-01-31T09:00)."
                continue
            if value.tzinfo is None:
                value = timezone.make_aware(value)
            setattr(f, name, value)
        return f

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters (links to the next page, bulk restart)."""
        out = {
            "workflow": str(self.workflow or ""),
            "status": self.status,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "object_id": self.object_id,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {k: v for k, v in out.items() if v}

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.as_query().items()]
        return ", ".join(parts) or "all runs"


def runs_filtered(*, environment: Environment, filters: RunFilters) -> QuerySet[Run]:
    """The runs of `environment` matching `filters`, newest first (not yet paginated)."""
    qs = Run.objects.filter(environment=environment, dry_run=False)
    if filters.workflow:
        qs = qs.filter(workflow_id=filters.workflow)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.event_type:
        # Matches the expression index run_env_event_type_created exactly.
        # Compared as text (not JSON), so the SQL is `(trigger ->> 'type') = %s` on PostgreSQL.
        event_type = ExpressionWrapper(KeyTextTransform("type", "trigger"), CharField())
        qs = qs.annotate(_event_type=event_type).filter(_event_type=filters.event_type)
    if filters.event_id:
        qs = qs.filter(event_id=filters.event_id)
    if filters.object_id:
        qs = qs.filter(pk__in=_run_ids_touching(environment, filters.object_id))
    if filters.since:
        qs = qs.filter(created__gte=filters.since)
    if filters.until:
        qs = qs.filter(created__lt=filters.until)
    return qs.order_by("-created", "-id")


def _run_ids_touching(environment: Environment, object_id: str) -> list[int]:
    """Ids of the latest runs that changed `object_id` or whose trigger event is about it.

    Resolved first, with two small indexed lookups, and then handed to the page query as a
    list: as a subquery, PostgreSQL would walk the whole (created, id) index testing each run
    against it (5 s at a million runs instead of a few ms). At most OBJECT_RUNS_CAP of each.
    """
    steps = StepRun.objects.all()
    if connection.vendor == "postgresql":
        # jsonb containment uses the GIN index (migration 0004).
        steps = steps.filter(changed_objects__contains=[{"id": object_id}])
    else:
        steps = steps.annotate(_changed=Cast("changed_objects", TextField())).filter(
            _changed__contains=f'"{object_id}"'
        )
    changed = steps.order_by("-run_id").values_list("run_id", flat=True)[:OBJECT_RUNS_CAP]
    events = Event.objects.filter(environment=environment, object_id=object_id).order_by("-created")
    event_ids = list(events.values_list("pk", flat=True)[:OBJECT_RUNS_CAP])
    triggered = (
        Run.objects.filter(event_id__in=event_ids).values_list("pk", flat=True) if event_ids else []
    )
    return sorted(set(changed) | set(triggered))


@dataclass
class RunPage:
    runs: list[Run]
    next_cursor: str
    filters: RunFilters


def cursor_encode(run: Run) -> str:
    raw = f"{run.created.isoformat()}|{run.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, int] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_raw, pk_raw = base64.urlsafe_b64decode(padded).decode().split("|")
        created = parse_datetime(created_raw)
        return (created, int(pk_raw)) if created is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


def runs_page(
    *,
    environment: Environment,
    filters: RunFilters,
    cursor: str = "",
    size: int = PAGE_SIZE,
) -> RunPage:
    """One keyset page of runs, with the cursor of the next page ("" on the last)."""
    qs = runs_filtered(environment=environment, filters=filters)
    position = cursor_decode(cursor) if cursor else None
    if position is not None:
        created, pk = position
        qs = qs.filter(created__lte=created).filter(Q(created__lt=created) | Q(pk__lt=pk))
    rows = list(
        qs.select_related("workflow", "version").only(
            "id",
            "status",
            "trigger_kind",
            "event_id",
            "created",
            "started_at",
            "finished_at",
            "restart_count",
            "error",
            "workflow__id",
            "workflow__name",
            "version__id",
            "version__number",
        )[: size + 1]
    )
    next_cursor = cursor_encode(rows[size - 1]) if len(rows) > size else ""
    return RunPage(runs=rows[:size], next_cursor=next_cursor, filters=filters)


def runs_by_ids(*, environment: Environment, ids: list[int]) -> list[Run]:
    """Rows for the live refresh of running rows (only this environment's)."""
    return list(
        Run.objects.filter(environment=environment, pk__in=ids[:PAGE_SIZE])
        .select_related("workflow", "version")
        .order_by("-created", "-id")
    )


def run_for_environment(*, environment: Environment, run_id: int) -> Run | None:
    return (
        Run.objects.filter(environment=environment, pk=run_id)
        .select_related("workflow", "version", "event", "started_by")
        .first()
    )


def run_step_runs(*, run: Run) -> list[StepRun]:
    return list(StepRun.objects.filter(run=run).order_by("id"))


def run_audits(*, run: Run) -> list[RunAudit]:
    return list(
        RunAudit.objects.filter(run=run)
        .select_related("user", "api_key__environment")
        .order_by("at", "id")
    )


def run_chain(*, environment: Environment, run: Run) -> list[dict]:
    """The recursion chain: the runs (and their workflows) that caused this one, oldest first."""
    pairs = [p for p in (run.cause_chain or []) if isinstance(p, list | tuple) and len(p) == 2]
    if not pairs:
        return []
    run_ids = [p[1] for p in pairs]
    known = {
        r.pk: r
        for r in Run.objects.filter(environment=environment, pk__in=run_ids).select_related(
            "workflow"
        )
    }
    names = dict(
        Workflow.objects.filter(environment=environment, pk__in=[p[0] for p in pairs]).values_list(
            "pk", "name"
        )
    )
    return [
        {"workflow_id": wf, "workflow": names.get(wf, f"workflow {wf}"), "run": known.get(rid)}
        for wf, rid in pairs
    ]


def runs_touching(*, environment: Environment, object_id: str, limit: int = 20) -> list[Run]:
    """The latest runs that changed `object_id` or were triggered by an event about it."""
    filters = RunFilters(object_id=object_id)
    return list(
        runs_filtered(environment=environment, filters=filters).select_related("workflow")[:limit]
    )


def workflows_for_filter(*, environment: Environment) -> list[Workflow]:
    return list(
        Workflow.objects.filter(environment=environment, deleted_at__isnull=True).only("id", "name")
    )
