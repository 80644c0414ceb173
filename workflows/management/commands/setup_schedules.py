"""`python manage.py setup_schedules`: install Billflow's django-q schedules (idempotent).

The sweep (every minute), the stall alert (every minute) and the retention prune (every minute);
schedule rows naming a function of an earlier layout are pointed at its new path first.
Run it after `migrate` on every deploy; `dev.py start` runs it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from workflows.operations.schedules import (
    MOVED_FUNCS,
    SCHEDULES,
    schedules_install,
    schedules_repoint,
)


class Command(BaseCommand):
    help = "Create or repair the sweep, stall-alert and retention schedules."

    def handle(self, *args: Any, **options: Any) -> None:
        for old, count in schedules_repoint().items():
            self.stdout.write(f"{old}: {count} schedule(s) moved to {MOVED_FUNCS[old]}")
        for name, outcome in schedules_install().items():
            self.stdout.write(f"{name} ({SCHEDULES[name][0]}): {outcome}")
