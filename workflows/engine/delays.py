"""What a delay step means: when the run resumes.

A delay waits `seconds` from when the step is first reached, or `until` a time (an ISO
timestamp, or a {{ reference }} resolved to one). A time already past resumes at once. The
resume time is computed once and kept in the step's record, so a restarted worker or a
re-walk after the wait resumes at the same time instead of starting the wait over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils.dateparse import parse_datetime

from workflows.actions.registry import ActionError
from workflows.engine.approvals import waiting_reason, waiting_request
from workflows.models import Run, StepRun


def parse_timestamp(value: object) -> datetime | None:
    """An ISO timestamp with a time zone, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def resume_at(step_id: str, resolved: dict, now: datetime) -> datetime:
    """The resume time of a delay whose `until` (if any) is resolved; raises ActionError."""
    if "seconds" in resolved:
        return now + timedelta(seconds=int(resolved["seconds"]))
    until = resolved.get("until")
    if isinstance(until, datetime):
        return until
    at = parse_timestamp(until)
    if at is None:
        raise ActionError(
            f"Delay step '{step_id}': 'until' resolved to {until!r}, not an ISO timestamp "
            "with a time zone.",
            type="delay_until",
        )
    return at


def describe(at: datetime, step_id: str) -> str:
    return f"waiting until {at.isoformat()}, delay step {step_id}"


def waiting_on(run: Run) -> dict | None:
    """What a `waiting` run waits for (the inspector, the API): the step whose record is
    pending with a `waiting_for`, its resume time and the reason in words; None otherwise."""
    if run.status != Run.Status.WAITING:
        return None
    rec = (
        StepRun.objects.filter(
            run=run, status=StepRun.Status.PENDING, output__has_key="waiting_for"
        )
        .order_by("-started_at")
        .first()
    )
    at = run.next_attempt_at
    step_id = rec.step_id if rec is not None else ""
    kind = (rec.output or {}).get("waiting_for", "") if rec is not None else ""
    if kind == "approval":
        request = waiting_request(run)
        if request is not None:
            return waiting_reason(request)
    reason = describe(at, step_id) if at is not None else f"waiting on step {step_id}"
    return {"for": kind, "step": step_id, "resume_at": at, "reason": reason}
