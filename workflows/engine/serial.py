"""One at a time per key (`trigger.serialize_by`, docs/workflows.md "One at a time per customer").

The runs of a serialized workflow that share a key (the event's customer, or its object)
execute one at a time in the order their runs were created, which is their events' order.
The key is the run's `serial_key`, set when the run is created; the claim
(`store/runs.py`) refuses to start a run while the key is held (`store/serial.py` says by
whom), and whatever ends a run hands the key on (`key_released`).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from workflows.definition.rows import shared_definition
from workflows.engine.queue import run_enqueue
from workflows.engine.store import serial as serial_store


def key_of(trigger: dict, envelope: dict) -> str | None:
    """The serial key of an event's run, or None (not serialized, or the event has no such
    object: its run is not held back)."""
    by = trigger.get("serialize_by")
    if by is None:
        return None
    obj = (envelope.get("data") or {}).get("object") or {}
    if by == "object":
        key = obj.get("id")
    elif obj.get("object") == "customer":
        key = obj.get("id")
    else:
        key = obj.get("customer")
        if isinstance(key, dict):  # an expanded customer
            key = key.get("id")
    return key if isinstance(key, str) and key else None


def max_wait_seconds(trigger: dict) -> float:
    """How long a failed run of this trigger holds its key."""
    minutes = trigger.get("serialize_max_wait_minutes")
    if minutes is None:
        minutes = settings.BILLFLOW["SERIALIZE_MAX_WAIT_MINUTES"]
    return float(minutes) * 60


def key_released(run) -> None:
    """A run of a key ended (succeeded, failed past nothing, canceled, resolved): look at the
    next run of its key now instead of at the sweep's next pass. A failed run still holds the
    key until its max wait; the sweep enqueues the next run then."""
    if run.serial_key is None:
        return
    next_id = serial_store.next_run(run)
    if next_id is not None:
        run_enqueue(next_id)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} min" if minutes >= 1 else f"{seconds:g} s"


def note_of(run) -> dict | None:
    """`note` with the trigger's `serialize_by` read from the run's version."""
    if run.serial_key is None:
        return None
    by = shared_definition(run.version)["trigger"].get("serialize_by") or "key"
    return note(run, by)


def note(run, by: str) -> dict | None:
    """What the inspector and the API say about a run's key: the run a pending run waits for,
    or the failed run it went ahead of once the max wait was over; None otherwise.
    `by` is the trigger's `serialize_by`."""
    if run.serial_key is None:
        return None
    same = f"same {by} {run.serial_key}"
    if run.status == run.Status.PENDING:
        held_by = serial_store.holder(run)
        if held_by is None:
            return None
        reason = f"waiting for run #{held_by.pk} ({same}) to finish"
        proceeds_at = None
        if held_by.status == run.Status.FAILED:
            proceeds_at = held_by.finished_at + timedelta(seconds=run.serial_max_wait or 0)
            reason += (
                f": it failed at {held_by.finished_at.isoformat()}; proceeds at "
                f"{proceeds_at.isoformat()} unless it is restarted"
            )
        return {
            "run": held_by.pk,
            "key": run.serial_key,
            "proceeds_at": proceeds_at,
            "reason": reason,
            "passed": False,
        }
    if run.started_at is None:
        return None
    passed = serial_store.passed_failed(run, run.started_at)
    if passed is None:
        return None
    reason = (
        f"started after run #{passed.pk} had failed for {_minutes(run.serial_max_wait)} "
        f"(serialize_by {by})"
    )
    return {
        "run": passed.pk,
        "key": run.serial_key,
        "proceeds_at": None,
        "reason": reason,
        "passed": True,
    }
