"""`python manage.py health [--json] [--notify]`: the health report; exit code 1 when unhealthy.

For cron or a monitoring agent on any host: it needs only the database (and Redis, if that is
the broker), not a running cluster, so it also sees "no cluster at all". `--notify` runs the
stall alert too (once per stall), for deployments that want it independent of the workers.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from workflows.operations.health import health_report, report_text, stall_check


class Command(BaseCommand):
    help = "Report run liveness and cluster heartbeats; exit 1 when unhealthy."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--notify", action="store_true", help="Also notify operators of a new stall."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = health_report()
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(report_text(report))
        if options["notify"] and stall_check():
            self.stderr.write("Operators notified of the stall.")
        if not report["healthy"]:
            raise SystemExit(1)
