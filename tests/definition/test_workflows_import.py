"""`manage.py workflows_import FILE.json`: drafts from the JSON form, errors that name the step."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.definition.test_workflow_definitions import DESIGN_EXAMPLE, EVERY_FEATURE, SCHEDULE
from workflows.models import Workflow
from workflows.services import workflow_definition


def run(*args: str) -> str:
    out = StringIO()
    call_command("workflows_import", *args, stdout=out)
    return out.getvalue()


def test_it_imports_a_definition_as_a_draft_in_live_by_default(live, tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(DESIGN_EXAMPLE))
    output = run(str(path))
    workflow = Workflow.objects.get()
    assert output == f"{workflow.pk}\tdraft\tTag customer region\n"
    assert workflow.environment == live
    assert workflow_definition(workflow) == DESIGN_EXAMPLE


def test_it_imports_a_list_into_the_chosen_environment_and_activates(sandbox, tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps([EVERY_FEATURE, SCHEDULE]))
    run(str(path), "--environment", "sandbox", "--activate")
    workflows = Workflow.objects.filter(environment=sandbox).order_by("pk")
    assert [(w.name, w.status) for w in workflows] == [
        ("Everything", "active"),
        ("Weekly sweep", "active"),
    ]


def test_it_reports_validation_errors_and_imports_nothing(live, tmp_path):
    bad = {**DESIGN_EXAMPLE, "steps": [{"id": "x", "type": "action", "action": "nope"}]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps([DESIGN_EXAMPLE, bad]))
    with pytest.raises(CommandError) as exc:
        run(str(path))
    assert str(exc.value) == (
        "definition 1 is not valid:\n  step 'x', steps[0].action: Unknown action 'nope'"
    )
    assert not Workflow.objects.exists()


def test_it_rejects_malformed_json_and_unknown_environments(live, tmp_path):
    path = tmp_path / "w.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="is not valid JSON"):
        run(str(path))
    with pytest.raises(CommandError, match="No environment 'mars'"):
        run(str(path), "--environment", "mars")
    with pytest.raises(CommandError, match="Cannot read"):
        run(str(tmp_path / "missing.json"))
