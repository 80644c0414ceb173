"""The JSON form <-> relational rows: lossless round trips, immutable published versions."""

from __future__ import annotations

import copy

import pytest

from workflows.definition.rows import (
    definition_to_json,
    definition_to_rows,
    version_definition,
)
from workflows.definition.validation import validate_definition
from workflows.models import BranchPath, Condition, Step, Workflow, WorkflowVersion

# The example of DESIGN.md, verbatim.
DESIGN_EXAMPLE = {
    "name": "Tag customer region",
    "trigger": {
        "type": "event",
        "event": "customer.created",
        "accounts": "platform",
        "conditions": {"all": [{"field": "trigger.data.object.email", "op": "exists"}]},
    },
    "steps": [
        {
            "id": "region",
            "type": "branch",
            "paths": [
                {
                    "name": "North America",
                    "when": {
                        "any": [
                            {
                                "field": "trigger.data.object.address.country",
                                "op": "in",
                                "value": ["US", "CA"],
                            }
                        ]
                    },
                    "steps": [
                        {
                            "id": "tag_na",
                            "type": "action",
                            "action": "customers.update",
                            "params": {
                                "customer": "{{ trigger.data.object.id }}",
                                "metadata": {"Location": "North America"},
                            },
                        }
                    ],
                },
                {
                    "name": "Everyone else",
                    "when": None,
                    "steps": [
                        {
                            "id": "tag_global",
                            "type": "action",
                            "action": "customers.update",
                            "params": {
                                "customer": "{{ trigger.data.object.id }}",
                                "metadata": {"Location": "Global"},
                            },
                        }
                    ],
                },
            ],
        }
    ],
}

# Every feature: description, a leaf as the trigger's root condition, nested groups, a value
# that is null, a condition step, a branch with several paths and an else path, a loop over a
# list action with a cap, a loop over a list field nested in a branch, step names, item refs.
EVERY_FEATURE = {
    "name": "Everything",
    "description": "Uses every part of the JSON form.",
    "trigger": {
        "type": "event",
        "event": "customer.updated",
        "accounts": "all",
        "conditions": {
            "any": [
                {"field": "trigger.data.object.email", "op": "changed"},
                {
                    "all": [
                        {"field": "trigger.data.object.description", "op": "eq", "value": None},
                        {"field": "trigger.data.object.balance", "op": "lt", "value": -100},
                    ]
                },
            ]
        },
    },
    "steps": [
        {
            "id": "get_customer",
            "name": "Read the customer",
            "type": "action",
            "action": "customers.retrieve",
            "params": {"customer": "{{ trigger.data.object.id }}"},
        },
        {
            "id": "has_email",
            "type": "condition",
            "condition": {"field": "steps.get_customer.output.email", "op": "exists"},
        },
        {
            "id": "each_sub",
            "type": "foreach",
            "action": "subscriptions.list",
            "params": {"customer": "{{ trigger.data.object.id }}", "status": "active"},
            "max_items": 50,
            "steps": [
                {
                    "id": "tag_sub",
                    "type": "action",
                    "action": "subscriptions.update",
                    "params": {"subscription": "{{ item.id }}", "metadata": {"seen": "yes"}},
                }
            ],
        },
        {
            "id": "route",
            "type": "branch",
            "paths": [
                {
                    "name": "Big",
                    "when": {
                        "field": "trigger.data.object.balance",
                        "op": "gte",
                        "value": 10000,
                    },
                    "steps": [
                        {
                            "id": "each_invoice_line",
                            "type": "foreach",
                            "items": "{{ steps.get_customer.output.metadata }}",
                            "steps": [
                                {
                                    "id": "note",
                                    "type": "action",
                                    "action": "customers.update",
                                    "params": {
                                        "customer": "{{ trigger.data.object.id }}",
                                        "description": "Saw {{ item }}",
                                    },
                                }
                            ],
                        }
                    ],
                },
                {"name": "Empty path", "when": {"all": []}, "steps": []},
                {"name": "Else", "when": None, "steps": []},
            ],
        },
    ],
}

MANUAL = {
    "name": "Refund by hand",
    "trigger": {
        "type": "manual",
        "input": [
            {"name": "charge", "type": "string", "required": True, "label": "Charge"},
            {"name": "amount", "type": "integer", "required": False, "help": "Minor unit"},
            {"name": "reason", "type": "string", "choices": ["duplicate", "fraudulent"]},
        ],
    },
    "steps": [
        {
            "id": "refund",
            "type": "action",
            "action": "refunds.create",
            "params": {
                "charge": "{{ trigger.input.charge }}",
                "amount": "{{ trigger.input.amount }}",
            },
        }
    ],
}

SCHEDULE = {
    "name": "Weekly sweep",
    "trigger": {"type": "schedule", "cron": "0 9 * * 1"},
    "steps": [
        {
            "id": "open_invoices",
            "type": "foreach",
            "action": "invoices.list",
            "params": {"status": "open"},
            "steps": [
                {
                    "id": "pay",
                    "type": "action",
                    "action": "invoices.pay",
                    "params": {"invoice": "{{ item.id }}"},
                }
            ],
        }
    ],
}


def draft(environment, definition: dict) -> WorkflowVersion:
    workflow = Workflow.objects.create(environment=environment, name=definition["name"])
    version = WorkflowVersion(workflow=workflow)
    return definition_to_rows(version=version, definition=definition)


@pytest.mark.parametrize("definition", [DESIGN_EXAMPLE, EVERY_FEATURE, MANUAL, SCHEDULE])
def test_it_round_trips_a_definition_losslessly(live, definition):
    assert validate_definition(definition) == []
    version = draft(live, copy.deepcopy(definition))
    assert version_definition(WorkflowVersion.objects.get(pk=version.pk)) == definition


def test_it_stores_the_design_example_relationally(live):
    version = draft(live, DESIGN_EXAMPLE)
    assert version.trigger_event == "customer.created"
    assert version.step_count == 3
    branch = Step.objects.get(version=version, step_id="region")
    paths = list(BranchPath.objects.filter(step=branch))
    assert [(p.name, p.is_else) for p in paths] == [
        ("North America", False),
        ("Everyone else", True),
    ]
    assert Step.objects.get(version=version, step_id="tag_na").parent_path == paths[0]
    leaf = Condition.objects.get(version=version, path=paths[0], group="")
    assert (leaf.field, leaf.op, leaf.value) == (
        "trigger.data.object.address.country",
        "in",
        ["US", "CA"],
    )


def test_it_keeps_a_missing_value_apart_from_a_null_value(live):
    version = draft(live, EVERY_FEATURE)
    leaves = Condition.objects.filter(version=version, group="", step=None, path=None)
    by_op = {c.op: c for c in leaves}
    assert by_op["changed"].has_value is False
    assert by_op["eq"].has_value is True and by_op["eq"].value is None


def test_it_rewrites_a_draft_in_place(live):
    version = draft(live, EVERY_FEATURE)
    definition_to_rows(version=version, definition=DESIGN_EXAMPLE)
    assert version_definition(version) == DESIGN_EXAMPLE
    assert Step.objects.filter(version=version).count() == 3


def test_it_refuses_to_write_a_published_version(live):
    version = draft(live, DESIGN_EXAMPLE)
    version.number = 1
    version.save()
    with pytest.raises(ValueError, match="is published and cannot change"):
        definition_to_rows(version=version, definition=EVERY_FEATURE)


def test_it_caches_published_versions_and_hands_out_copies(live, django_assert_num_queries):
    version = draft(live, DESIGN_EXAMPLE)
    version.number = 1
    version.save()
    first = version_definition(version)
    first["name"] = "changed by a caller"
    with django_assert_num_queries(0):
        again = version_definition(version)
    assert again == DESIGN_EXAMPLE


def test_it_reads_a_version_in_three_queries(live, django_assert_num_queries):
    version = draft(live, EVERY_FEATURE)
    with django_assert_num_queries(3):
        version_definition(version)


def test_it_puts_a_definition_in_canonical_form():
    loose = copy.deepcopy(DESIGN_EXAMPLE)
    del loose["trigger"]["accounts"]
    loose["steps"][0]["name"] = ""
    canonical = definition_to_json(loose)
    assert canonical == DESIGN_EXAMPLE
    assert definition_to_json(canonical) == canonical
