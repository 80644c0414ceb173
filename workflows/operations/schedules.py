"""Billflow's own django-q schedules, installed idempotently by `manage.py setup_schedules`.

Run on every deploy (and by `dev.py start`): a schedule that exists is brought back to this
definition without touching its next run; a missing one is created due now; duplicates (two
hosts deploying at once; django-q's `name` is not unique) are folded into the oldest.
"""

from __future__ import annotations

from importlib import import_module

from django.db import transaction
from django.utils import timezone

MINUTES = "I"  # django_q.models.Schedule.MINUTES

# name -> (function, schedule type, minutes)
SCHEDULES: dict[str, tuple[str, str, int | None]] = {
    # The engine's recovery sweep (also made by migration workflows/0005).
    "workflows.sweep": ("workflows.tasks.sweep", MINUTES, 1),
    "billflow.stall_check": ("workflows.tasks.stall_check", MINUTES, 1),
    # Every minute, each pass within BILLFLOW["RETENTION_BUDGET_SECONDS"]: retention keeps up
    # with the load instead of deleting a fixed number of runs an hour.
    "billflow.retention": ("workflows.tasks.retention_prune", MINUTES, 1),
    # Webhook deliveries that are due: retries, dead workers' claims, lost messages.
    "webhooks.sweep": ("webhooks.tasks.sweep", MINUTES, 1),
}

# Function paths that schedule rows of earlier versions may still hold -> where they live now.
# Each queue entry point now sits in workflows/tasks.py, whose names are the stable contract.
MOVED_FUNCS: dict[str, str] = {
    "workflows.health.stall_check": "workflows.tasks.stall_check",
    "workflows.retention.retention_prune": "workflows.tasks.retention_prune",
    "workflows.system.payment_retries_task": "workflows.tasks.payment_retries",
    "workflows.notifications.failure_notifications_deliver": (
        "workflows.tasks.failure_notifications_deliver"
    ),
}


def schedules_repoint() -> dict[str, int]:
    """Point schedule rows still naming a moved function at its new path; returns old path ->
    rows changed. Covers the schedules this module does not own too (the payment-retry
    schedule, the one-off failure-digest windows), which would otherwise fail on import."""
    from django_q.models import Schedule

    changed: dict[str, int] = {}
    with transaction.atomic():
        for old, new in MOVED_FUNCS.items():
            count = Schedule.objects.filter(func=old).update(func=new)
            if count:
                changed[old] = count
    return changed


def _importable(func: str) -> bool:
    module, _, name = func.rpartition(".")
    try:
        return hasattr(import_module(module), name)
    except ImportError:
        return False


def schedules_install() -> dict[str, str]:
    """Create or repair each schedule; returns name -> created / updated / unchanged / missing."""
    from django_q.models import Schedule

    outcome: dict[str, str] = {}
    for name, (func, schedule_type, minutes) in SCHEDULES.items():
        if not _importable(func):
            outcome[name] = "missing"  # e.g. the engine has no sweep task in this version
            continue
        wanted = {"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1}
        with transaction.atomic():
            existing = list(Schedule.objects.filter(name=name).order_by("pk"))
            if not existing:
                Schedule.objects.create(name=name, next_run=timezone.now(), **wanted)
                outcome[name] = "created"
                continue
            keep, extra = existing[0], existing[1:]
            if extra:
                Schedule.objects.filter(pk__in=[s.pk for s in extra]).delete()
            changed = {k: v for k, v in wanted.items() if getattr(keep, k) != v}
            if changed:
                Schedule.objects.filter(pk=keep.pk).update(**changed)
            outcome[name] = "updated" if changed or extra else "unchanged"
    return outcome
