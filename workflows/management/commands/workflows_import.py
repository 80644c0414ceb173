"""`python manage.py workflows_import FILE.json [--environment live] [--publish] [--activate]`

Creates a draft workflow from the JSON form (one object, or a list of them) and prints the
new ids. The definition must be valid; errors name the step and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Environment
from workflows.definition.validation import DefinitionInvalid
from workflows.services import (
    WorkflowError,
    workflow_activate,
    workflow_create,
    workflow_publish,
)


class Command(BaseCommand):
    help = "Import workflows from a JSON file (the JSON form of workflows_export)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "file", help="A JSON file: one definition or a list of them ('-': stdin)"
        )
        parser.add_argument(
            "--environment", default="live", help="Environment slug (default: live)"
        )
        parser.add_argument("--publish", action="store_true", help="Publish after importing")
        parser.add_argument("--activate", action="store_true", help="Publish and activate")

    def handle(self, *args, file: str, environment: str, publish: bool, activate: bool, **options):
        try:
            environment_obj = Environment.objects.get(slug=environment)
        except Environment.DoesNotExist:
            raise CommandError(f"No environment '{environment}'") from None
        try:
            text = self.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}") from None
        definitions = data if isinstance(data, list) else [data]
        created = []
        try:
            with transaction.atomic():
                for index, definition in enumerate(definitions):
                    try:
                        workflow = workflow_create(
                            environment=environment_obj, definition=definition
                        )
                        if publish or activate:
                            workflow_publish(workflow=workflow)
                        if activate:
                            workflow_activate(workflow=workflow)
                    except DefinitionInvalid as exc:
                        lines = "\n".join(f"  {error}" for error in exc.errors)
                        prefix = f"definition {index}" if isinstance(data, list) else file
                        raise CommandError(f"{prefix} is not valid:\n{lines}") from None
                    created.append(workflow)
        except WorkflowError as exc:
            raise CommandError(exc.message) from None
        for workflow in created:
            workflow.refresh_from_db()
            self.stdout.write(f"{workflow.pk}\t{workflow.status}\t{workflow.name}")
