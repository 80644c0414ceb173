"""A field added with a default to Run and StepRun needs no change in the engine.

The store builds its statements from the models' `_meta`: the run's INSERT, the claim that
returns and loads the run, and the step records' upsert all take the model's columns as they
are now. Django's schema editor adds the column NOT NULL without a database default (the
default is Python's), so a statement that kept its own column list would fail the run with a
NOT NULL error. Here the field is added to the models and to the tables for one test, a
5-step run is executed to the end, and both are taken away again.
"""

from __future__ import annotations

import pytest
from django.db import connection, models

from billing.models import Customer
from tests import factories
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.models import Delivery, Run, StepRun

FIELD = "added_note"
DEFAULTS = {Run: "run-default", StepRun: "step-default", Delivery: "sent-default"}

FIVE_STEPS = {
    "name": "Five steps",
    "trigger": {"type": "manual", "input": [{"name": "customer", "type": "string"}]},
    "steps": [
        {
            "id": "has_customer",
            "type": "condition",
            "condition": {"all": [{"field": "trigger.input.customer", "op": "exists"}]},
        },
        *(
            {
                "id": f"tag_{n}",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {f"tag_{n}": "done"},
                },
            }
            for n in range(3)
        ),
        {
            "id": "tell",
            "type": "action",
            "action": "team.email",
            "params": {"recipients": ["mona"], "subject": "Tagged", "body": "All three."},
        },
    ],
}


def _add(model: type[models.Model], default: str) -> models.Field:
    field = models.CharField(max_length=40, default=default)
    field.set_attributes_from_name(FIELD)
    with connection.schema_editor() as editor:
        field.contribute_to_class(model, FIELD)
        editor.add_field(model, field)
    return field


def _remove(model: type[models.Model], field: models.Field) -> None:
    with connection.schema_editor() as editor:
        editor.remove_field(model, field)
    model._meta.local_fields.remove(field)
    model._meta._expire_cache()
    delattr(model, FIELD)


@pytest.fixture
def added_fields(transactional_db):
    added = {}
    try:
        for model, default in DEFAULTS.items():
            added[model] = _add(model, default)
        yield
    finally:
        for model, field in added.items():
            _remove(model, field)


def _column_is_not_null_without_a_database_default(model) -> bool:
    with connection.cursor() as cursor:
        described = connection.introspection.get_table_description(cursor, model._meta.db_table)
    [column] = [c for c in described if c.name == FIELD]
    return not column.null_ok and column.default is None


def test_a_five_step_run_ends_with_a_field_added_to_runs_and_step_records(
    added_fields, live, alice, mona
):
    for model in DEFAULTS:
        assert _column_is_not_null_without_a_database_default(model)
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, FIVE_STEPS, alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)

    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    run = Run.objects.get(pk=run.pk)
    assert run.status == Run.Status.SUCCEEDED and run.error is None
    assert getattr(run, FIELD) == DEFAULTS[Run]
    steps = StepRun.objects.filter(run=run).order_by("pk")
    assert [s.step_id for s in steps] == ["has_customer", "tag_0", "tag_1", "tag_2", "tell"]
    assert {s.status for s in steps} == {StepRun.Status.SUCCEEDED}
    assert {getattr(s, FIELD) for s in steps} == {DEFAULTS[StepRun]}
    [delivery] = Delivery.objects.all()
    assert delivery.status == Delivery.Status.SENT
    assert getattr(delivery, FIELD) == DEFAULTS[Delivery]
    metadata = Customer.objects.get(pk=customer.pk).metadata
    assert {k: metadata[k] for k in ("tag_0", "tag_1", "tag_2")} == dict.fromkeys(
        ("tag_0", "tag_1", "tag_2"), "done"
    )
