"""`python manage.py prune_runs`: apply the retention policy now (the hourly schedule does it too).

Repeats bounded batches until nothing is left, e.g. after lowering RUN_RETENTION_DAYS.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from workflows.operations.retention import retention_days, retention_prune


class Command(BaseCommand):
    help = "Delete run history older than BILLFLOW['RUN_RETENTION_DAYS'] (failed runs are kept)."

    def handle(self, *args: Any, **options: Any) -> None:
        totals: dict[str, int] = {}
        for _ in range(10_000):  # bounded: 10,000 calls of up to 20,000 rows each
            result = retention_prune()
            for key, count in result.items():
                totals[key] = totals.get(key, 0) + count
            if not any(result.values()):
                break
        summary = ", ".join(f"{key} {count}" for key, count in totals.items())
        self.stdout.write(f"Retention {retention_days()} days: deleted {summary}.")
