"""Runs exported as CSV or JSON, and one run as a JSON document.

The runs list's "Export CSV" / "Export JSON" links and `manage.py runs_export` both read the
inspector's own `RunFilters` and `runs_filtered` (selectors.py), so an export holds exactly the
runs the list shows. Rows are read in chunks by primary key, newest first (`id < last`), as
plain values: memory stays the same for ten runs or a million, and runs created while an export
is being written are not in it (they have higher ids than the first chunk).

JSON is one JSON array, written element by element: a reader gets one valid document, and a
download cut short is visibly broken (no closing bracket) rather than silently shorter.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import CharField, ExpressionWrapper
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from billing.events import event_envelope
from billing.models import Environment
from workflows.inspector.selectors import RunFilters, run_step_runs, runs_filtered
from workflows.models import Run, RunNote

CHUNK_SIZE = 500

COLUMNS = [
    "run_id",
    "workflow_name",
    "workflow_id",
    "version",
    "status",
    "event_id",
    "event_type",
    "object_id",
    "created",
    "started",
    "finished",
    "duration_seconds",
    "failed_step",
    "error",
]

# What one chunk reads: plain values, no model instances.
_VALUES = (
    "id",
    "workflow_id",
    "workflow__name",
    "version__number",
    "status",
    "event_id",
    "export_event_type",
    "event__object_id",
    "created",
    "started_at",
    "finished_at",
    "error",
)


def export_filename(*, environment: Environment, extension: str, now: datetime | None = None):
    """runs-live-20260131-090000.csv: which environment, and when (UTC)."""
    stamp = (now or timezone.now()).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"runs-{environment.slug}-{stamp}.{extension}"


def runs_export_count(*, environment: Environment, filters: RunFilters) -> int:
    return runs_filtered(environment=environment, filters=filters).count()


def runs_export_rows(
    *, environment: Environment, filters: RunFilters, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """One dict per run (keys: COLUMNS) matching `filters`, newest id first, read in chunks."""
    event_type = ExpressionWrapper(KeyTextTransform("type", "trigger"), CharField())
    base = (
        runs_filtered(environment=environment, filters=filters)
        .annotate(export_event_type=event_type)
        .order_by("-id")
        .values(*_VALUES)
    )
    last_id: int | None = None
    while True:
        chunk = base if last_id is None else base.filter(id__lt=last_id)
        rows = list(chunk[:chunk_size])
        for row in rows:
            yield _export_row(row)
        if len(rows) < chunk_size:
            return
        last_id = rows[-1]["id"]


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    started, finished = row["started_at"], row["finished_at"]
    error = row["error"] if row["status"] == Run.Status.FAILED else None
    error = error if isinstance(error, dict) else {}
    return {
        "run_id": row["id"],
        "workflow_name": row["workflow__name"],
        "workflow_id": row["workflow_id"],
        "version": row["version__number"],
        "status": row["status"],
        "event_id": row["event_id"] or "",
        "event_type": row["export_event_type"] or "",
        "object_id": row["event__object_id"] or "",
        "created": _iso(row["created"]),
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 3)
        if started and finished
        else None,
        "failed_step": str(error.get("step") or ""),
        "error": _error_text(error),
    }


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _error_text(error: dict) -> str:
    if not error:
        return ""
    kind, message = error.get("type") or "", error.get("message") or ""
    return f"{kind}: {message}" if kind and message else str(kind or message)


# --- formats ----------------------------------------------------------------------------------


def csv_chunks(rows: Iterable[dict[str, Any]], *, rows_per_chunk: int = CHUNK_SIZE):
    """The header line, then the rows as CSV text, `rows_per_chunk` rows per string."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    yield _drain(buffer)
    pending = 0
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        pending += 1
        if pending == rows_per_chunk:
            yield _drain(buffer)
            pending = 0
    if pending:
        yield _drain(buffer)


def json_chunks(rows: Iterable[dict[str, Any]], *, rows_per_chunk: int = CHUNK_SIZE):
    """A JSON array of the rows, one element per line, `rows_per_chunk` rows per string."""
    parts: list[str] = []
    separator = "[\n"
    for row in rows:
        parts.append(separator + json.dumps(row, ensure_ascii=False))
        separator = ",\n"
        if len(parts) == rows_per_chunk:
            yield "".join(parts)
            parts = []
    yield "".join(parts) + ("\n]\n" if separator == ",\n" else "[]\n")


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


# format -> (chunk writer, content type, file extension)
FORMATS = {
    "csv": (csv_chunks, "text/csv; charset=utf-8", "csv"),
    "json": (json_chunks, "application/json", "json"),
}


# --- one run ----------------------------------------------------------------------------------


def run_document(run: Run) -> dict[str, Any]:
    """One run as JSON: the run, its steps with their attempts, params and outputs as stored,
    errors, and the event that triggered it (Stripe's envelope)."""
    return {
        "id": run.pk,
        "environment": run.environment.slug,
        "workflow": {"id": run.workflow_id, "name": run.workflow.name},
        "version": {"id": run.version_id, "number": run.version.number},
        "status": run.status,
        "trigger_kind": run.trigger_kind,
        "trigger": run.trigger,
        "started_by": run.started_by.get_username() if run.started_by else None,
        "created": _iso(run.created),
        "started": _iso(run.started_at),
        "finished": _iso(run.finished_at),
        "restart_count": run.restart_count,
        "stop_reason": run.stop_reason,
        "error": run.error,
        "path": run.path,
        "cause_chain": run.cause_chain,
        "event": event_envelope(run.event) if run.event_id else None,
        "steps": [
            {
                "step_id": s.step_id,
                "iteration": s.iteration,
                "status": s.status,
                "attempts": s.attempts,
                "attempt_errors": s.attempt_errors,
                "attempt_log": s.attempt_log,
                "params": s.params,
                "output": s.output,
                "error": s.error,
                "branch_chosen": s.branch_chosen,
                "changed_objects": s.changed_objects,
                "started": _iso(s.started_at),
                "finished": _iso(s.finished_at),
            }
            for s in run_step_runs(run=run)
        ],
        "notes": [
            {"kind": n.kind, "body": n.body, "author": n.actor, "created": _iso(n.created)}
            for n in RunNote.objects.filter(run=run).select_related("user", "api_key")
        ],
    }
