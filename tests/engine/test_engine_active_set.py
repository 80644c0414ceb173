"""Events a step records are matched against the active workflows, cached per signature.

On PostgreSQL a worker keeps each environment's event-triggered workflows and reuses them
while the signature its steps read as they start is unchanged; any activation, deactivation or
publication changes the signature, and the next step sees it.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests import factories
from workflows import services
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.models import Run

# The dispatcher's own query for an event's candidates (dispatch.py), not the cache's load.
CANDIDATE_QUERY = re.compile(r"AND v\.trigger_event = ", re.IGNORECASE)

TAG = {
    "name": "Tag the customer",
    "trigger": {"type": "manual", "input": [{"name": "customer", "type": "string"}]},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.input.customer }}",
                "metadata": {"seen_by": "run {{ run.id }}"},  # a change, so an event
            },
        }
    ],
}
ON_UPDATE = {
    "name": "Notice updates",
    "trigger": {"type": "event", "event": "customer.updated", "accounts": "platform"},
    "steps": [{"id": "always", "type": "condition", "condition": {"all": []}}],
}


def _tag(workflow, customer, user) -> None:
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=user)
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED


@pytest.mark.postgres
def test_a_step_s_event_starts_the_workflows_active_when_the_step_started(live, alice):
    tagger = factories.workflow_active(live, TAG, alice)
    listener = factories.workflow_active(live, ON_UPDATE, alice)
    customer = factories.customer(live)

    _tag(tagger, customer, alice)
    assert Run.objects.filter(workflow=listener).count() == 1

    services.workflow_deactivate(workflow=listener)
    _tag(tagger, customer, alice)
    assert Run.objects.filter(workflow=listener).count() == 1  # inactive: no run

    services.workflow_activate(workflow=listener)
    _tag(tagger, customer, alice)
    assert Run.objects.filter(workflow=listener).count() == 2


@pytest.mark.postgres
def test_an_unchanged_set_of_workflows_is_not_asked_for_again(live, alice):
    tagger = factories.workflow_active(live, TAG, alice)
    listener = factories.workflow_active(live, ON_UPDATE, alice)
    customer = factories.customer(live)
    _tag(tagger, customer, alice)  # loads the environment's candidates

    with CaptureQueriesContext(connection) as queries:
        _tag(tagger, customer, alice)

    assert not [q for q in queries.captured_queries if CANDIDATE_QUERY.search(q["sql"])]
    assert Run.objects.filter(workflow=listener).count() == 2
