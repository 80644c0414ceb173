"""`python manage.py runs_restart`: restart the failed runs matching the runs list's filters.

    python manage.py runs_restart --workflow "Ledger sync" --since 2026-01-01
    python manage.py runs_restart --event-type invoice.paid --mode from_failed_step --user mona

The filters are `runs_export`'s (same options, same errors). The command creates a run batch and
applies it in this process with the workers' job code (workflows/batches/jobs.py), so each run is
restarted once, with its audit row naming the batch; progress is redrawn on stderr. Cut short,
the batch is left running and the sweep hands the rest to the workers.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from workflows.batches.jobs import batch_apply, batch_create
from workflows.management.commands.runs_export import Command as ExportCommand
from workflows.models import RestartMode, RunBatch


class BatchCommand(ExportCommand):
    """The export's filter options, read by its `_filters`; a batch instead of a file."""

    action: str = RunBatch.Action.RESTART
    verb = "Restarted"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", default="live", help="environment slug (live)")
        parser.add_argument("--workflow", default="", help="workflow id or exact name")
        parser.add_argument("--status", default="", help="narrows the runs the action applies to")
        parser.add_argument("--event-type", default="", help="e.g. invoice.paid")
        parser.add_argument("--event-id", default="", help="evt_…")
        parser.add_argument("--object", default="", help="an object id: cus_…, in_…, sub_…")
        parser.add_argument("--since", default="", help="2026-01-31 or 2026-01-31T09:00")
        parser.add_argument("--until", default="", help="2026-02-01 (exclusive)")
        parser.add_argument("--user", default="", help="who the audit names (a username)")
        if self.action == RunBatch.Action.RESTART:
            parser.add_argument(
                "--mode", choices=RestartMode.values, default=RestartMode.FROM_FAILED_STEP
            )

    def handle(self, *args: Any, **options: Any) -> None:
        environment = self._environment(options["environment"])
        filters = self._filters(environment, options)
        user = self._user(options["user"])
        batch = batch_create(
            environment=environment,
            action=self.action,
            filter=filters.as_query(),
            mode=options.get("mode", ""),
            user=user,
            enqueue=False,
        )
        self.stderr.style_func = None  # progress is plain text, not an error's colour
        batch_apply(
            batch_id=batch.pk,
            budget=float("inf"),
            on_progress=self._progress_bar,
            continue_with=None,
        )
        batch.refresh_from_db()
        self.stderr.write("")
        if batch.status != RunBatch.Status.SUCCEEDED:
            raise CommandError(f"Batch {batch.pk} stopped: {batch.error}")
        self.stdout.write(
            f"Batch {batch.pk} ({filters.describe()}): {self.verb.lower()} {batch.done:,}, "
            f"skipped {batch.skipped:,}, failed {batch.failed:,} of {batch.total:,} runs."
        )
        for reason, count in sorted(batch.reasons.items(), key=lambda kv: -kv[1]):
            self.stdout.write(f"  {count:,} × {reason}")

    def _user(self, username: str) -> Any:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--user: no user {username!r}.")
        return user

    def _progress_bar(self, batch: RunBatch) -> None:
        processed = batch.done + batch.skipped + batch.failed
        total = batch.total
        share = processed / total if total else 1.0
        bar = "#" * int(share * 30)
        listing = "" if batch.resolved_at else " (listing runs…)"
        self.stderr.write(
            f"\r[{bar:<30}] {processed:,} / {total:,} runs ({int(share * 100)}%){listing}",
            ending="",
        )
        self.stderr.flush()


class Command(BatchCommand):
    help = "Restart the failed runs matching the runs list's filters (a run batch)."
