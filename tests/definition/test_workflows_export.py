"""`manage.py workflows_export ID`: prints the JSON form; importing it gives the same back."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.definition.test_workflow_definitions import (
    DESIGN_EXAMPLE,
    EVERY_FEATURE,
    MANUAL,
    SCHEDULE,
)
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_publish, workflow_update


def export(*args: str) -> dict:
    out = StringIO()
    call_command("workflows_export", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize("definition", [DESIGN_EXAMPLE, EVERY_FEATURE, MANUAL, SCHEDULE])
def test_it_round_trips_through_export_and_import(live, tmp_path, definition):
    workflow = workflow_create(environment=live, definition=definition)
    exported = export(str(workflow.pk))
    assert exported == definition
    path = tmp_path / "w.json"
    path.write_text(json.dumps(exported))
    call_command("workflows_import", str(path), stdout=StringIO())
    again = Workflow.objects.exclude(pk=workflow.pk).get()
    assert export(str(again.pk)) == definition


def test_it_exports_the_published_version_unless_asked_for_the_draft(live):
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    workflow_publish(workflow=workflow)
    workflow_update(workflow=workflow, definition={**DESIGN_EXAMPLE, "name": "Next"})
    assert export(str(workflow.pk))["name"] == "Tag customer region"
    assert export(str(workflow.pk), "--draft")["name"] == "Next"


def test_it_fails_for_an_unknown_workflow(live):
    with pytest.raises(CommandError, match="No workflow 999"):
        export("999")
