"""Workflow definition services: drafts, immutable versions, activation, limits, schedules."""

from __future__ import annotations

import copy

import pytest
from django.test import override_settings
from django_q.models import Schedule

from tests.definition.test_workflow_definitions import DESIGN_EXAMPLE, MANUAL, SCHEDULE
from workflows.definition.rows import version_definition
from workflows.definition.validation import DefinitionInvalid
from workflows.engine.store.forcing import force_rows
from workflows.models import Run, Step, Workflow, WorkflowVersion
from workflows.services import (
    SCHEDULE_FUNC,
    WorkflowLimitExceeded,
    WorkflowStateError,
    schedule_name,
    workflow_activate,
    workflow_copy_to_environment,
    workflow_create,
    workflow_deactivate,
    workflow_definition,
    workflow_delete,
    workflow_duplicate,
    workflow_publish,
    workflow_purge_deleted,
    workflow_update,
)

LIMITS = {"MAX_STEPS_PER_WORKFLOW": 12, "MAX_ACTIVE_WORKFLOWS": 2, "MAX_WORKFLOWS": 3}


def renamed(definition: dict, name: str) -> dict:
    return {**copy.deepcopy(definition), "name": name}


def active_workflow(environment, definition=DESIGN_EXAMPLE, user=None) -> Workflow:
    workflow = workflow_create(environment=environment, definition=definition, created_by=user)
    workflow_publish(workflow=workflow, published_by=user)
    return workflow_activate(workflow=workflow)


def test_it_creates_a_draft(live, mona):
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE, created_by=mona)
    assert workflow.status == Workflow.Status.DRAFT
    assert workflow.name == "Tag customer region"
    assert workflow.created_by == mona
    assert workflow.published_version is None
    assert version_definition(workflow.draft_version) == DESIGN_EXAMPLE


def test_it_refuses_an_invalid_definition_naming_the_problem(live):
    definition = renamed(DESIGN_EXAMPLE, "Bad")
    definition["trigger"]["event"] = "customer.exploded"
    with pytest.raises(DefinitionInvalid) as exc:
        workflow_create(environment=live, definition=definition)
    assert [e.message for e in exc.value.errors] == ["Unknown event type 'customer.exploded'"]
    assert not Workflow.objects.exists()


def test_it_stores_an_incomplete_draft_when_asked_but_never_publishes_it(live):
    definition = renamed(DESIGN_EXAMPLE, "Incomplete")
    definition["steps"][0]["paths"][0]["steps"][0]["params"] = {}
    workflow = workflow_create(environment=live, definition=definition, allow_invalid=True)
    with pytest.raises(DefinitionInvalid) as exc:
        workflow_publish(workflow=workflow)
    assert exc.value.errors[0].message == "'customer' is required for customers.update"
    workflow.refresh_from_db()
    assert workflow.published_version is None


def test_it_publishes_numbered_immutable_versions(live, mona):
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    first = workflow_publish(workflow=workflow, published_by=mona)
    assert (first.number, first.published_by, first.published_at is not None) == (1, mona, True)
    workflow_update(workflow=workflow, definition=renamed(DESIGN_EXAMPLE, "Renamed"))
    workflow.refresh_from_db()
    assert workflow.published_version == first
    assert workflow.draft_version != first
    second = workflow_publish(workflow=workflow)
    assert second.number == 2
    first.refresh_from_db()
    assert version_definition(first)["name"] == "Tag customer region"
    assert version_definition(second)["name"] == "Renamed"


def test_it_rewrites_the_same_draft_on_each_update(live):
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    draft_id = workflow.draft_version_id
    workflow_update(workflow=workflow, definition=MANUAL)
    workflow.refresh_from_db()
    assert workflow.draft_version_id == draft_id
    assert WorkflowVersion.objects.filter(workflow=workflow).count() == 1
    assert workflow_definition(workflow) == MANUAL
    assert Step.objects.filter(version_id=draft_id).count() == 1


def test_it_refuses_to_publish_without_a_draft(live):
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    workflow_publish(workflow=workflow)
    with pytest.raises(WorkflowStateError, match="There is no draft to publish"):
        workflow_publish(workflow=workflow)


def test_it_activates_only_a_published_version(live):
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    with pytest.raises(WorkflowStateError, match="Publish the workflow before activating it"):
        workflow_activate(workflow=workflow)
    workflow_publish(workflow=workflow)
    assert workflow_activate(workflow=workflow).status == Workflow.Status.ACTIVE


def test_it_deactivates(live):
    workflow = active_workflow(live)
    assert workflow_deactivate(workflow=workflow).status == Workflow.Status.INACTIVE
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.INACTIVE


@override_settings(BILLFLOW=LIMITS)
def test_it_limits_workflows_per_environment(live, sandbox):
    for index in range(3):
        workflow_create(environment=live, definition=renamed(DESIGN_EXAMPLE, f"W{index}"))
    with pytest.raises(WorkflowLimitExceeded) as exc:
        workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    assert exc.value.message == (
        "This environment already has 3 workflows; the limit is 3. "
        "Delete one before creating another."
    )
    assert workflow_create(environment=sandbox, definition=DESIGN_EXAMPLE).pk


@override_settings(BILLFLOW=LIMITS)
def test_it_limits_active_workflows_per_environment(live, sandbox):
    active_workflow(live, renamed(DESIGN_EXAMPLE, "A"))
    active_workflow(live, renamed(DESIGN_EXAMPLE, "B"))
    third = workflow_create(environment=live, definition=renamed(DESIGN_EXAMPLE, "C"))
    workflow_publish(workflow=third)
    with pytest.raises(WorkflowLimitExceeded) as exc:
        workflow_activate(workflow=third)
    assert exc.value.message == (
        "This environment already has 2 active workflows; the limit is 2. Deactivate one first."
    )
    third.refresh_from_db()
    assert third.status == Workflow.Status.DRAFT
    assert active_workflow(sandbox).status == Workflow.Status.ACTIVE


def test_it_hard_deletes_a_workflow_no_run_references(live):
    workflow = active_workflow(live)
    assert workflow_delete(workflow=workflow) is True
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not WorkflowVersion.objects.exists()


def test_it_soft_deletes_a_workflow_with_runs_until_they_are_gone(live):
    workflow = active_workflow(live)
    force_rows(Run).create(
        environment=live,
        workflow=workflow,
        version=workflow.published_version,
        trigger_kind=Run.TriggerKind.MANUAL,
    )
    assert workflow_delete(workflow=workflow) is False
    workflow.refresh_from_db()
    assert workflow.deleted_at is not None
    assert workflow.status == Workflow.Status.INACTIVE
    with pytest.raises(WorkflowStateError, match="is deleted"):
        workflow_activate(workflow=workflow)
    assert workflow_purge_deleted() == 0
    force_rows(Run.objects.filter(workflow=workflow)).delete()
    assert workflow_purge_deleted() == 1
    assert not Workflow.objects.filter(pk=workflow.pk).exists()


def test_it_does_not_count_deleted_workflows_against_the_limits(live):
    with override_settings(BILLFLOW={**LIMITS, "MAX_WORKFLOWS": 1}):
        workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
        force_rows(Run).create(
            environment=live,
            workflow=workflow,
            version=workflow.draft_version,
            trigger_kind=Run.TriggerKind.MANUAL,
        )
        workflow_delete(workflow=workflow)
        assert workflow_create(environment=live, definition=DESIGN_EXAMPLE).pk


def test_it_duplicates_a_workflow_as_a_draft(live, mona):
    workflow = active_workflow(live)
    copy_ = workflow_duplicate(workflow=workflow, created_by=mona)
    assert copy_.environment == live
    assert copy_.status == Workflow.Status.DRAFT
    assert workflow_definition(copy_) == renamed(DESIGN_EXAMPLE, "Tag customer region (copy)")


def test_it_copies_the_published_version_to_another_environment(sandbox, live, mona):
    workflow = active_workflow(sandbox)
    workflow_update(workflow=workflow, definition=renamed(DESIGN_EXAMPLE, "Unpublished edit"))
    copied = workflow_copy_to_environment(workflow=workflow, environment=live, created_by=mona)
    assert copied.environment == live
    assert copied.status == Workflow.Status.DRAFT
    assert copied.created_by == mona
    assert workflow_definition(copied) == DESIGN_EXAMPLE
    assert Workflow.objects.filter(environment=sandbox).count() == 1


def test_it_creates_a_django_q_schedule_while_a_scheduled_workflow_is_active(live):
    workflow = active_workflow(live, SCHEDULE)
    schedule = Schedule.objects.get(name=schedule_name(workflow.pk))
    assert schedule.func == SCHEDULE_FUNC == "workflows.tasks.start_scheduled_run"
    assert schedule.schedule_type == Schedule.CRON
    assert schedule.cron == "0 9 * * 1"
    assert schedule.args == f"({workflow.pk},)"
    assert schedule.next_run.weekday() == 0 and schedule.next_run.hour == 9

    changed = copy.deepcopy(SCHEDULE)
    changed["trigger"]["cron"] = "30 6 * * *"
    workflow_update(workflow=workflow, definition=changed)
    workflow_publish(workflow=workflow)
    assert Schedule.objects.get(name=schedule_name(workflow.pk)).cron == "30 6 * * *"

    workflow_deactivate(workflow=workflow)
    assert not Schedule.objects.filter(name=schedule_name(workflow.pk)).exists()


def test_it_removes_the_schedule_when_a_scheduled_workflow_is_deleted(live):
    workflow = active_workflow(live, SCHEDULE)
    workflow_delete(workflow=workflow)
    assert not Schedule.objects.filter(func=SCHEDULE_FUNC).exists()


def test_it_points_the_schedule_at_a_task_that_exists():
    from django.utils.module_loading import import_string

    assert callable(import_string(SCHEDULE_FUNC))


def test_it_makes_no_schedule_for_event_workflows(live):
    active_workflow(live)
    assert not Schedule.objects.filter(func=SCHEDULE_FUNC).exists()


def race(count: int, call) -> list:
    """Run `call` in `count` threads at once; each result or exception, in thread order."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(count, timeout=20)
    results: list = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = call(index)
        except Exception as exc:  # collected for the assertions
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_never_exceeds_the_workflow_limit_under_concurrent_creates():
    from tests import factories

    live = factories.environment("live")
    with override_settings(BILLFLOW={**LIMITS, "MAX_WORKFLOWS": 1}):
        results = race(
            2,
            lambda i: workflow_create(environment=live, definition=renamed(DESIGN_EXAMPLE, f"{i}")),
        )
    assert sorted(type(r).__name__ for r in results) == ["Workflow", "WorkflowLimitExceeded"]
    assert Workflow.objects.filter(environment=live).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_publishes_a_draft_once_under_concurrent_publishes():
    from tests import factories

    live = factories.environment("live")
    workflow = workflow_create(environment=live, definition=DESIGN_EXAMPLE)
    results = race(2, lambda i: workflow_publish(workflow=workflow))
    assert sorted(type(r).__name__ for r in results) == ["WorkflowStateError", "WorkflowVersion"]
    assert list(WorkflowVersion.objects.values_list("number", flat=True)) == [1]
