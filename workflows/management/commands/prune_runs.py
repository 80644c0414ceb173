"""`python manage.py prune_runs`: apply the retention policy now (the schedule does it too).

    python manage.py prune_runs                    # until nothing is left, with a progress bar
    python manage.py prune_runs --days 30          # a shorter window than the setting, once
    python manage.py prune_runs --dry-run          # what would be deleted, per table; nothing is
    python manage.py prune_runs --budget 600       # stop after 10 minutes (the rest stays)

The last line gives the rate achieved (runs/s and step records/s): on a copy of production it
is the measure of how much load the every-minute prune keeps up with.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.operations.retention import (
    Budget,
    RunsPruned,
    prunable_runs,
    retention_cutoff,
    retention_days,
    retention_dry_run,
    retention_prune,
)

BAR_WIDTH = 30


def _positive(value: Any, option: str, kind: type) -> Any:
    """The option's value as `kind`, or a CommandError naming the option and the rule."""
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number <= 0 or (kind is int and str(value).strip() != str(number)):
        rule = "a positive whole number of days" if kind is int else "a positive number of seconds"
        raise CommandError(f"{option}: must be {rule}, not {value!r}.")
    return number


class Command(BaseCommand):
    help = (
        "Delete run history older than the retention window (BILLFLOW['RUN_RETENTION_DAYS']); "
        "failed, pending and running runs are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", default=None, help="the window in days (default: the setting)"
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="count what would be deleted, per table, and delete nothing",
        )
        parser.add_argument(
            "--budget", default=None, help="stop after this many seconds (default: no limit)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = _positive(options["days"], "--days", int) or retention_days()
        budget_seconds = _positive(options["budget"], "--budget", float)
        if options["dry_run"]:
            self._dry_run(days)
            return
        self.stderr.style_func = None  # progress is plain text, not an error's colour
        total = prunable_runs(retention_cutoff(days=days)).count()
        started = time.monotonic()
        self._progress(RunsPruned(), total)
        result = retention_prune(
            days=days,
            budget=Budget(budget_seconds),
            progress=lambda done: self._progress(done, total),
        )
        elapsed = time.monotonic() - started
        self.stderr.write("")
        counts = ", ".join(
            f"{name.replace('_', ' ')} {result[name]:,}"
            for name in result
            if name not in ("backlog", "seconds")
        )
        self.stdout.write(f"Retention {days} days: deleted {counts} in {elapsed:.1f} s.")
        if result["runs"] and elapsed > 0:
            self.stdout.write(
                f"Rate: {result['runs'] / elapsed:,.0f} runs/s, "
                f"{result['step_runs'] / elapsed:,.0f} step records/s."
            )
        if result["backlog"]:
            self.stdout.write("The budget ran out: prunable runs are left for the next pass.")

    def _dry_run(self, days: int) -> None:
        counts = retention_dry_run(days=days)
        self.stdout.write(f"Retention {days} days, dry run: nothing deleted. Would delete:")
        width = max(len(table) for table in counts)
        for table, count in counts.items():
            self.stdout.write(f"  {table:<{width}}  {count:>12,}")

    def _progress(self, done: RunsPruned, total: int) -> None:
        share = min(done.runs / total, 1.0) if total else 1.0
        filled = round(share * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stderr.write(f"\r[{bar}] {done.runs:,} / {total:,} runs ({share:.0%})", ending="")
        self.stderr.flush()
