"""The builder's small edits on the draft's rows (workflows/builder/draft_edits.py): a step inserted
where it was asked for, its siblings shifted; the first edit after a publish makes a new draft
and leaves the published version alone; edits of a missing step or another type are refused."""

from __future__ import annotations

import pytest
from django.utils import timezone

from workflows import services
from workflows.builder.draft_edits import draft_step_insert, draft_step_update
from workflows.definition.rows import version_definition
from workflows.management.commands.bench_builder import twelve_step_definition
from workflows.models import Step, Workflow
from workflows.services import WorkflowStateError


def _action(step_id: str) -> dict:
    return {"id": step_id, "type": "action", "action": "customers.retrieve", "params": {}}


def _ids(steps: list) -> list[str]:
    return [step["id"] for step in steps]


@pytest.fixture
def twelve_step_workflow(live, mona, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_STEPS_PER_WORKFLOW": 20}
    return services.workflow_create(
        environment=live, definition=twelve_step_definition(), created_by=mona
    )


def _draft(twelve_step_workflow: Workflow) -> dict:
    twelve_step_workflow = Workflow.objects.get(pk=twelve_step_workflow.pk)
    return version_definition(twelve_step_workflow.draft_version)


def test_it_inserts_at_the_position_and_shifts_the_later_steps(twelve_step_workflow, mona):
    draft_step_insert(workflow=twelve_step_workflow, step=_action("new"), position=2, user=mona)
    definition = _draft(twelve_step_workflow)
    assert _ids(definition["steps"]) == [
        "fetch", "check", "new", "region", "each_sub", "tag_one", "tag_two", "tag_three"
    ]  # fmt: skip
    positions = Step.objects.filter(
        version=twelve_step_workflow.draft_version, parent_path=None, parent_loop=None
    ).values_list("position", flat=True)
    assert sorted(positions) == list(range(8))
    assert Workflow.objects.get(pk=twelve_step_workflow.pk).draft_version.step_count == 13


def test_it_inserts_into_a_branch_path_and_a_loop_body(twelve_step_workflow, mona):
    draft_step_insert(
        workflow=twelve_step_workflow,
        step=_action("eu_first"),
        parent="region",
        path_index=1,
        position=0,
    )
    draft_step_insert(
        workflow=twelve_step_workflow, step=_action("in_loop"), parent="each_sub", position=1
    )
    steps = _draft(twelve_step_workflow)["steps"]
    assert _ids(steps[2]["paths"][1]["steps"]) == ["eu_first", "tag_eu"]
    assert _ids(steps[2]["paths"][0]["steps"]) == ["tag_na"]
    assert _ids(steps[3]["steps"]) == ["active_only", "in_loop", "tag_sub"]


def test_it_makes_the_inserted_id_unique_and_clamps_the_position(twelve_step_workflow, mona):
    stored = draft_step_insert(workflow=twelve_step_workflow, step=_action("fetch"), position=99)
    assert stored["id"] == "fetch_2"
    assert _ids(_draft(twelve_step_workflow)["steps"])[-1] == "fetch_2"


def test_it_refuses_a_container_that_holds_no_steps(twelve_step_workflow):
    with pytest.raises(WorkflowStateError, match="holds no steps"):
        draft_step_insert(
            workflow=twelve_step_workflow, step=_action("x"), parent="fetch", position=0
        )
    with pytest.raises(WorkflowStateError, match="no such path"):
        draft_step_insert(
            workflow=twelve_step_workflow,
            step=_action("x"),
            parent="region",
            path_index=5,
            position=0,
        )


def test_the_first_edit_after_a_publish_makes_a_new_draft(twelve_step_workflow, mona):
    published = services.workflow_publish(workflow=twelve_step_workflow, published_by=mona)
    twelve_step_workflow.refresh_from_db()
    assert twelve_step_workflow.draft_version_id is None
    changed = {**_action("tag_one"), "action": "customers.update", "params": {"customer": "cus"}}
    draft_step_update(workflow=twelve_step_workflow, step=changed, user=mona)
    twelve_step_workflow.refresh_from_db()
    assert twelve_step_workflow.draft_version_id not in (None, published.pk)
    draft = version_definition(twelve_step_workflow.draft_version)
    assert draft["steps"][4]["params"] == {"customer": "cus"}
    assert version_definition(published)["steps"][4]["params"] != {"customer": "cus"}


def test_it_updates_a_condition_step(twelve_step_workflow, mona):
    condition = {"all": [{"field": "trigger.data.object.name", "op": "exists"}]}
    draft_step_update(
        workflow=twelve_step_workflow,
        step={"id": "check", "type": "condition", "condition": condition},
    )
    assert _draft(twelve_step_workflow)["steps"][1]["condition"] == condition


def test_it_refuses_a_missing_step_or_another_type(twelve_step_workflow):
    with pytest.raises(WorkflowStateError, match="no step 'nope'"):
        draft_step_update(workflow=twelve_step_workflow, step=_action("nope"))
    with pytest.raises(WorkflowStateError, match="Only the settings"):
        draft_step_update(
            workflow=twelve_step_workflow,
            step={"id": "fetch", "type": "condition", "condition": None},
        )
    with pytest.raises(WorkflowStateError, match="Only the settings"):
        draft_step_update(
            workflow=twelve_step_workflow, step={"id": "region", "type": "branch", "paths": []}
        )


def test_it_refuses_to_edit_a_deleted_workflow(twelve_step_workflow):
    # Soft-deleted: runs still reference it (services.workflow_delete).
    Workflow.objects.filter(pk=twelve_step_workflow.pk).update(deleted_at=timezone.now())
    with pytest.raises(WorkflowStateError, match="deleted"):
        draft_step_insert(workflow=twelve_step_workflow, step=_action("x"), position=0)
    with pytest.raises(WorkflowStateError, match="deleted"):
        draft_step_update(workflow=twelve_step_workflow, step=_action("fetch"))


def test_an_edit_marks_the_workflow_updated(twelve_step_workflow):
    before = Workflow.objects.get(pk=twelve_step_workflow.pk).updated
    draft_step_update(workflow=twelve_step_workflow, step=_action("fetch"))
    assert Workflow.objects.get(pk=twelve_step_workflow.pk).updated > before


def test_it_inserts_the_first_step_of_an_empty_draft_and_at_the_end(live, mona):
    empty = services.workflow_create(
        environment=live,
        definition={
            "name": "Empty",
            "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
            "steps": [],
        },
        allow_invalid=True,
    )
    draft_step_insert(workflow=empty, step=_action("first"), position=0, user=mona)
    draft_step_insert(workflow=empty, step=_action("second"), position=1, user=mona)
    draft_step_insert(workflow=empty, step=_action("zeroth"), position=0, user=mona)
    assert _ids(_draft(empty)["steps"]) == ["zeroth", "first", "second"]
    assert Workflow.objects.get(pk=empty.pk).draft_version.step_count == 3


def test_an_insert_after_a_publish_makes_a_new_draft(twelve_step_workflow, mona):
    published = services.workflow_publish(workflow=twelve_step_workflow, published_by=mona)
    draft_step_insert(workflow=twelve_step_workflow, step=_action("new"), position=0, user=mona)
    twelve_step_workflow.refresh_from_db()
    assert twelve_step_workflow.draft_version_id not in (None, published.pk)
    assert _ids(_draft(twelve_step_workflow)["steps"])[:2] == ["new", "fetch"]
    assert "new" not in _ids(version_definition(published)["steps"])
