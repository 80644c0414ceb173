"""`python manage.py system_workflows_install [--environment SLUG]`: install or update the
system workflows of every environment (or one). Idempotent; run it after each deploy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.models import Environment
from workflows.system.catalogue import system_workflows_install


class Command(BaseCommand):
    help = "Install (or bring up to date) the system workflows of each environment."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--environment", help="Only this environment (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        environments = Environment.objects.all()
        if options.get("environment"):
            environments = environments.filter(slug=options["environment"])
            if not environments.exists():
                raise CommandError(f"No environment {options['environment']!r}.")
        for environment in environments:
            workflows = system_workflows_install(environment=environment)
            self.stdout.write(f"{environment.slug}: {len(workflows)} system workflows installed.")
