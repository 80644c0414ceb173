"""`insert_unless_taken`: one INSERT that claims a unique key, a partial unique index too."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backoffice.inserts import insert_unless_taken
from tests import factories
from workflows.models import Run

ONE_PER_EVENT = "run_unique_workflow_event"


def _run(workflow, event, **fields) -> Run:
    return Run(
        environment_id=workflow.environment_id,
        workflow=workflow,
        version=workflow.published_version,
        trigger_kind=Run.TriggerKind.EVENT,
        event=event,
        **fields,
    )


@pytest.fixture
def workflow_and_event(live, alice):
    from billing.models import Event

    definition = {
        "name": "One run per event",
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [{"id": "yes", "type": "condition", "condition": {"all": []}}],
    }
    workflow = factories.workflow_active(live, definition, alice)
    factories.customer(live)
    return workflow, Event.objects.get(type="customer.created")


def test_a_partial_unique_index_claims_once_without_a_savepoint(workflow_and_event):
    workflow, event = workflow_and_event
    Run.objects.filter(workflow=workflow).delete()
    first, second = _run(workflow, event), _run(workflow, event)

    with CaptureQueriesContext(connection) as queries:
        assert insert_unless_taken(first, constraint=ONE_PER_EVENT)
        assert not insert_unless_taken(second, constraint=ONE_PER_EVENT)
        # The index is partial: dry runs of the same event are not held to it.
        assert insert_unless_taken(_run(workflow, event, dry_run=True), constraint=ONE_PER_EVENT)
    statements = [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]
    assert statements == ["INSERT"] * 3  # no savepoint, no second statement for the conflict
    assert first.pk is not None and second.pk is None
    assert Run.objects.filter(workflow=workflow, event=event, dry_run=False).count() == 1


def test_it_names_what_it_was_given_wrong(workflow_and_event):
    workflow, event = workflow_and_event
    with pytest.raises(ValueError, match="no unique constraint named 'nope'"):
        insert_unless_taken(_run(workflow, event), constraint="nope")
    with pytest.raises(ValueError, match="either the unique fields or the name"):
        insert_unless_taken(_run(workflow, event), unique=("workflow",), constraint=ONE_PER_EVENT)
