"""Metadata as Stripe has it: what a workflow step writes into metadata is stored as text.

A dynamic field keeps its value's type (`{{ run.id }}` is a number); when the step runs a
number or a boolean is written as its text and null removes the key, as "" does. An object or a
list is refused when the workflow is saved, naming the field, and fails the step naming the key
when a dynamic field turns into one at run time.
"""

from __future__ import annotations

import pytest
from django.test import TestCase

from billing import services as billing
from billing.models import Customer
from tests import factories
from tests.api_client import api_for, error_of
from tests.engine.test_engine_executor import drain
from tests.workers import qclusters, wait_for
from workflows import services as workflow_services
from workflows.models import Run, StepRun, Workflow
from workflows.services import workflow_definition


def stamp(metadata: dict, event: str = "customer.updated") -> dict:
    return {
        "name": "Stamp customers",
        "trigger": {
            "type": "event",
            "event": event,
            "accounts": "platform",
            # The step's own customer.updated changes only metadata: it starts nothing.
            "conditions": {"all": [{"field": "trigger.data.object.name", "op": "changed"}]},
        },
        "steps": [
            {
                "id": "stamp",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.data.object.id }}", "metadata": metadata},
            }
        ],
    }


NUMBERS = {
    "created_at": "{{ trigger.data.object.created }}",
    "seen_by": "{{ run.id }}",
    "balance": "{{ trigger.data.object.balance }}",
    "deleted": "{{ trigger.data.object.deleted }}",
    "ratio": 0.5,
    "vip": True,
    "stale": None,
}


def _customer_to_stamp(live):
    return factories.customer(live, metadata={"stale": "old", "keep": "yes"})


def _go(customer) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        billing.customer_update(customer=customer, changes={"name": "Go"})


def test_it_writes_numbers_and_booleans_as_their_text_and_null_removes_the_key(live, alice):
    workflow = factories.workflow_active(live, stamp(NUMBERS), alice)
    customer = _customer_to_stamp(live)
    _go(customer)
    drain()

    run = Run.objects.get(workflow=workflow)
    assert run.status == Run.Status.SUCCEEDED, run.error
    customer = Customer.objects.get(pk=customer.pk)
    assert customer.metadata == {
        "keep": "yes",
        "created_at": str(run.trigger["data"]["object"]["created"]),
        "seen_by": str(run.pk),
        "balance": "0",
        "deleted": "false",
        "ratio": "0.5",
        "vip": "true",
    }


def test_it_fails_the_step_naming_the_key_when_a_dynamic_field_is_an_object(live, alice):
    metadata = {"where": "{{ trigger.data.object.address }}"}
    workflow = factories.workflow_active(live, stamp(metadata), alice)
    customer = factories.customer(live, address={"country": "CA"})
    _go(customer)
    drain()

    run = Run.objects.get(workflow=workflow)
    assert run.status == Run.Status.FAILED
    step = StepRun.objects.get(run=run, step_id="stamp")
    assert step.error["type"] == "parameter_invalid"
    assert step.error["param"] == "metadata[where]"
    assert "values are text, numbers or booleans, not an object" in step.error["message"]
    assert "where" not in Customer.objects.get(pk=customer.pk).metadata


def test_the_api_refuses_a_workflow_writing_an_object_into_metadata_naming_the_field(live):
    definition = stamp({"ok": "yes", "tier": {"level": 3}})

    response = api_for(live).post("/workflows", definition)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "workflow_invalid"
    assert error["param"] == "steps[0].params.metadata.tier"
    assert "'tier' is an object" in error["message"]
    assert not Workflow.objects.exists()


def test_the_builder_shows_an_object_in_metadata_as_an_error_and_refuses_to_publish(
    client, live, mona
):
    workflow = workflow_services.workflow_create(
        environment=live, definition=stamp({"ok": "yes"}), created_by=mona
    )
    client.force_login(mona)
    response = client.post(
        f"/admin/workflows/{workflow.pk}/steps/stamp/",
        {
            "p_customer": "{{ trigger.data.object.id }}",
            "p_metadata": '{"ok": "yes", "tags": ["a", "b"]}',
        },
        HTTP_HX_REQUEST="true",
    )

    body = response.content.decode()
    field = body[body.index('id="wf-field-p_metadata"') :]
    assert "Metadata values are text, numbers or booleans; &#x27;tags&#x27; is a list" in field
    assert "Saved, with problems to fix" in body
    step = workflow_definition(Workflow.objects.get(pk=workflow.pk))["steps"][0]
    assert step["params"]["metadata"] == {"ok": "yes", "tags": ["a", "b"]}
    with pytest.raises(workflow_services.DefinitionInvalid):
        workflow_services.workflow_publish(workflow=workflow, published_by=mona)


@pytest.mark.postgres
@pytest.mark.workers
def test_workers_store_a_timestamp_and_the_run_id_written_into_metadata_as_text(
    transactional_db, live, alice
):
    workflow = factories.workflow_active(live, stamp(NUMBERS), alice)
    with qclusters(count=1, workers=1):
        customer = _customer_to_stamp(live)
        billing.customer_update(customer=customer, changes={"name": "Go"})
        wait_for(
            lambda: Run.objects.filter(
                workflow=workflow, status__in=[Run.Status.SUCCEEDED, Run.Status.FAILED]
            ).exists(),
            timeout=45,
        )

    run = Run.objects.get(workflow=workflow)
    assert run.status == Run.Status.SUCCEEDED, run.error
    metadata = Customer.objects.get(pk=customer.pk).metadata
    assert metadata["created_at"] == str(run.trigger["data"]["object"]["created"])
    assert metadata["seen_by"] == str(run.pk)
    assert metadata["vip"] == "true"
    assert "stale" not in metadata and metadata["keep"] == "yes"
