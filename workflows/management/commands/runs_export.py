"""`python manage.py runs_export`: the runs list's export, from the command line.

    python manage.py runs_export --format csv --status failed --since 2026-01-01 > failed.csv
    python manage.py runs_export --format json --environment sandbox --output runs.json

The options are the runs list's filters, read by the same `RunFilters` (a bad value is refused
with the list's sentence, naming the option) and exported by the same code as the list's
"Export CSV" / "Export JSON" links (workflows/inspector/export.py). Written to stdout, or to
`--output` with a progress counter on stderr; the file appears only once it is complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.models import Environment
from workflows.inspector.export import (
    CHUNK_SIZE,
    FORMATS,
    runs_export_count,
    runs_export_rows,
)
from workflows.inspector.selectors import RunFilters
from workflows.models import Workflow

# RunFilters' query parameter -> this command's option.
OPTION_OF = {
    "workflow": "--workflow",
    "status": "--status",
    "event_type": "--event-type",
    "event_id": "--event-id",
    "object_id": "--object",
    "since": "--since",
    "until": "--until",
}


class Command(BaseCommand):
    help = "Export runs matching the runs list's filters as CSV or JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=sorted(FORMATS), default="csv")
        parser.add_argument("--environment", default="live", help="environment slug (live)")
        parser.add_argument("--workflow", default="", help="workflow id or exact name")
        parser.add_argument("--status", default="", help="pending, running, succeeded, …")
        parser.add_argument("--event-type", default="", help="e.g. invoice.paid")
        parser.add_argument("--event-id", default="", help="evt_…")
        parser.add_argument("--object", default="", help="an object id: cus_…, in_…, sub_…")
        parser.add_argument("--since", default="", help="2026-01-31 or 2026-01-31T09:00")
        parser.add_argument("--until", default="", help="2026-02-01 (exclusive)")
        parser.add_argument("--output", default="", help="a file (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        environment = self._environment(options["environment"])
        filters = self._filters(environment, options)
        write, _, _ = FORMATS[options["format"]]
        rows = runs_export_rows(environment=environment, filters=filters)
        output = options["output"]
        if not output:
            for text in write(rows):
                self.stdout.write(text, ending="")
            return
        self.stderr.style_func = None  # progress is plain text, not an error's colour
        total = runs_export_count(environment=environment, filters=filters)
        partial = f"{output}.part"
        try:
            with open(partial, "w", encoding="utf-8", newline="") as file:
                for text in write(self._counted(rows, total)):
                    file.write(text)
            os.replace(partial, output)
        except OSError as exc:
            raise CommandError(f"--output: cannot write {output}: {exc.strerror}") from exc
        finally:
            if os.path.exists(partial):  # an export cut short leaves no half file behind
                os.remove(partial)
        self.stderr.write("")
        self.stderr.write(f"Exported {total:,} runs ({filters.describe()}) to {output}.")

    def _environment(self, slug: str) -> Environment:
        env = Environment.objects.filter(slug=slug).first()
        if env is None:
            known = ", ".join(Environment.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(f"--environment: no environment {slug!r} (known: {known}).")
        return env

    def _filters(self, environment: Environment, options: dict[str, Any]) -> RunFilters:
        query = {
            "workflow": self._workflow_id(environment, options["workflow"].strip()),
            "status": options["status"],
            "event_type": options["event_type"],
            "event_id": options["event_id"],
            "object_id": options["object"],
            "since": options["since"],
            "until": options["until"],
        }
        filters = RunFilters.from_query(query)
        if filters.errors:
            problems = "; ".join(f"{OPTION_OF[k]}: {msg}" for k, msg in filters.errors.items())
            raise CommandError(problems)
        return filters

    def _workflow_id(self, environment: Environment, value: str) -> str:
        """A workflow id as the list's filter takes it; a name is looked up in the environment."""
        if not value or value.isdigit():
            return value
        ids = list(
            Workflow.objects.filter(
                environment=environment, name=value, deleted_at__isnull=True
            ).values_list("pk", flat=True)[:2]
        )
        if len(ids) != 1:
            why = "no workflow" if not ids else "more than one workflow"
            raise CommandError(
                f"--workflow: {why} named {value!r} in {environment.slug}; give its id instead."
            )
        return str(ids[0])

    def _counted(self, rows: Iterator[dict], total: int) -> Iterator[dict]:
        """The rows, unchanged, with "Exported n / total runs" redrawn on stderr as they pass."""
        done = 0
        self._progress(done, total)
        for row in rows:
            yield row
            done += 1
            if done % CHUNK_SIZE == 0:
                self._progress(done, total)
        self._progress(done, total)

    def _progress(self, done: int, total: int) -> None:
        share = f" ({done * 100 // total}%)" if total else ""
        self.stderr.write(f"\rExported {done:,} / {total:,} runs{share}", ending="")
        self.stderr.flush()
