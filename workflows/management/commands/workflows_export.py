"""`python manage.py workflows_export ID [--draft]`: print a workflow's JSON form.

The published version by default (the draft when nothing is published, or with --draft).
Importing the output gives the same definition back.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from workflows.models import Workflow
from workflows.services import WorkflowError, workflow_definition


class Command(BaseCommand):
    help = "Print a workflow's definition as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("id", type=int, help="The workflow id")
        parser.add_argument("--draft", action="store_true", help="Export the draft")

    def handle(self, *args, id: int, draft: bool, **options) -> None:
        workflow = Workflow.objects.filter(pk=id, deleted_at__isnull=True).first()
        if workflow is None:
            raise CommandError(f"No workflow {id}")
        try:
            definition = workflow_definition(
                workflow, draft=draft or workflow.published_version is None
            )
        except WorkflowError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(definition, indent=2, ensure_ascii=False))
