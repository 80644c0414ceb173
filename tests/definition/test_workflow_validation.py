"""Validation of the JSON form: every rule, each with the message an operator reads."""

from __future__ import annotations

import copy

import pytest
from django.test import override_settings

from tests.definition.test_workflow_definitions import (
    DESIGN_EXAMPLE,
    EVERY_FEATURE,
    MANUAL,
    SCHEDULE,
)
from workflows.definition.validation import (
    ValidationError,
    validate_definition,
    validate_manual_input,
)


def action(step_id: str, key: str = "customers.update", **params) -> dict:
    params.setdefault("customer", "{{ trigger.data.object.id }}")
    return {"id": step_id, "type": "action", "action": key, "params": params}


def event_workflow(*steps: dict, event: str = "customer.created", conditions=None) -> dict:
    trigger: dict = {"type": "event", "event": event, "accounts": "platform"}
    if conditions is not None:
        trigger["conditions"] = conditions
    return {"name": "W", "trigger": trigger, "steps": list(steps)}


def only_error(definition: dict) -> ValidationError:
    errors = validate_definition(definition)
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize("definition", [DESIGN_EXAMPLE, EVERY_FEATURE, MANUAL, SCHEDULE])
def test_it_accepts_valid_definitions(definition):
    assert validate_definition(definition) == []


# --- shape ------------------------------------------------------------------------------------


def test_it_rejects_a_definition_that_is_not_an_object():
    assert only_error([]).message == "A workflow definition is a JSON object, not list"


def test_it_rejects_unknown_top_level_keys():
    definition = {**event_workflow(action("a")), "color": "red"}
    error = only_error(definition)
    assert (error.field, error.message) == (
        "color",
        "Unknown key 'color': use name, description, trigger, steps",
    )


def test_it_requires_a_name():
    definition = {**event_workflow(action("a")), "name": " "}
    assert only_error(definition).message == "A workflow needs a name"


def test_it_rejects_an_unknown_trigger_type():
    definition = {**event_workflow(action("a")), "trigger": {"type": "webhook"}}
    error = only_error(definition)
    assert error.field == "trigger.type"
    assert error.message == "Unknown trigger type 'webhook': use event, manual, schedule"


def test_it_rejects_a_key_that_does_not_belong_to_the_trigger_type():
    definition = {**SCHEDULE, "trigger": {"type": "schedule", "cron": "0 9 * * 1", "event": "x"}}
    error = only_error(definition)
    assert error.field == "trigger.event"
    assert error.message.startswith("Unknown key 'event' for a schedule trigger")


def test_it_rejects_steps_that_are_not_a_list():
    definition = {**event_workflow(), "steps": {"a": 1}}
    assert only_error(definition).message == "'steps' must be a list"


def test_it_rejects_an_invalid_step_id():
    error = only_error(event_workflow(action("has space")))
    assert error.field == "steps[0].id"
    assert error.message.startswith("Step id 'has space' is not valid")


def test_it_rejects_duplicate_step_ids_also_across_nesting():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    definition["steps"][0]["paths"][1]["steps"][0]["id"] = "tag_na"
    error = only_error(definition)
    assert error.step_id == "tag_na"
    assert error.field == "steps[0].paths[1].steps[0].id"
    assert error.message == (
        "Duplicate step id 'tag_na': step ids must be unique in the whole workflow, "
        "nested steps included"
    )


def test_it_rejects_an_unknown_step_type():
    error = only_error(event_workflow({"id": "a", "type": "wait"}))
    assert (error.step_id, error.field) == ("a", "steps[0].type")
    assert error.message == (
        "Unknown step type 'wait': use action, condition, branch, foreach, delay, approval"
    )


def test_it_rejects_unknown_step_keys():
    step = {**action("a"), "retries": 3}
    error = only_error(event_workflow(step))
    assert error.field == "steps[0].retries"
    assert error.message.startswith("Unknown key 'retries' for a action step")


def test_it_rejects_a_branch_without_paths():
    error = only_error(event_workflow({"id": "b", "type": "branch", "paths": []}))
    assert (error.field, error.message) == ("steps[0].paths", "A branch needs a list of paths")


# --- triggers ---------------------------------------------------------------------------------


def test_it_rejects_an_unknown_event_type():
    error = only_error(event_workflow(action("a"), event="customer.exploded"))
    assert (error.field, error.message) == (
        "trigger.event",
        "Unknown event type 'customer.exploded'",
    )


def test_it_rejects_an_unknown_account_scope():
    definition = event_workflow(action("a"))
    definition["trigger"]["accounts"] = "everyone"
    error = only_error(definition)
    assert error.field == "trigger.accounts"
    assert error.message == "Unknown account scope 'everyone': use platform, connected, all"


@pytest.mark.parametrize("cron", ["61 9 * * 1", "every monday", "0 9 * * 1 2026"])
def test_it_checks_the_schedule_cron(cron):
    definition = {**SCHEDULE, "trigger": {"type": "schedule", "cron": cron}}
    error = only_error(definition)
    assert error.field == "trigger.cron"
    assert error.message.startswith(f"'{cron}' is not a valid cron expression")


def test_it_requires_a_cron_for_a_schedule():
    definition = {**SCHEDULE, "trigger": {"type": "schedule"}}
    assert only_error(definition).message == "A schedule trigger needs a cron expression"


@pytest.mark.parametrize(
    ("declared", "field", "message"),
    [
        ({"name": "1x", "type": "string"}, "trigger.input[0].name", "Input name '1x' is not valid"),
        ({"name": "a", "type": "date"}, "trigger.input[0].type", "Unknown input type 'date'"),
        ({"name": "a", "required": "yes"}, "trigger.input[0].required", "'required' must be"),
        ({"name": "a", "default": 1}, "trigger.input[0].default", "Unknown key 'default'"),
        ({"name": "a", "choices": "x"}, "trigger.input[0].choices", "'choices' must be a list"),
    ],
)
def test_it_checks_manual_input_declarations(declared, field, message):
    definition = {**MANUAL, "trigger": {"type": "manual", "input": [declared]}, "steps": []}
    error = only_error(definition)
    assert error.field == field
    assert error.message.startswith(message)


def test_it_rejects_duplicate_manual_input_names():
    declared = [{"name": "a"}, {"name": "a"}]
    definition = {**MANUAL, "trigger": {"type": "manual", "input": declared}, "steps": []}
    assert only_error(definition).message == "Duplicate input name 'a'"


# --- actions and params -----------------------------------------------------------------------


def test_it_rejects_an_unknown_action():
    error = only_error(event_workflow(action("a", key="customers.explode")))
    assert (error.step_id, error.field) == ("a", "steps[0].action")
    assert error.message == "Unknown action 'customers.explode'"


def test_it_rejects_a_missing_required_param():
    step = {"id": "a", "type": "action", "action": "customers.retrieve", "params": {}}
    error = only_error(event_workflow(step))
    assert error.field == "steps[0].params.customer"
    assert error.message == "'customer' is required for customers.retrieve"


def test_it_rejects_an_unknown_param():
    error = only_error(event_workflow(action("a", colour="red")))
    assert error.field == "steps[0].params.colour"
    assert error.message.startswith("Unknown parameter 'colour' for customers.update: use ")


@pytest.mark.parametrize(
    ("key", "params", "field", "message"),
    [
        (
            "subscriptions.cancel",
            {"subscription": "sub_1", "at_period_end": "yes"},
            "at_period_end",
            "'at_period_end' must be a boolean, not string",
        ),
        (
            "refunds.create",
            {"charge": "ch_1", "amount": True},
            "amount",
            "'amount' must be an integer, not boolean",
        ),
        (
            "customers.update",
            {"customer": "cus_1", "address": "Main St"},
            "address",
            "'address' must be an object, not string",
        ),
        (
            "customers.update",
            {"customer": 12},
            "customer",
            "'customer' must be a string, not integer",
        ),
    ],
)
def test_it_rejects_mistyped_params(key, params, field, message):
    step = {"id": "a", "type": "action", "action": key, "params": params}
    error = only_error(event_workflow(step))
    assert (error.field, error.message) == (f"steps[0].params.{field}", message)


def test_it_rejects_a_value_outside_the_choices():
    step = {
        "id": "a",
        "type": "action",
        "action": "refunds.create",
        "params": {"charge": "ch_1", "reason": "bored"},
    }
    error = only_error(event_workflow(step))
    assert error.message == (
        "'bored' is not a valid choice for 'reason': use duplicate, fraudulent, "
        "requested_by_customer"
    )


def test_it_rejects_text_mixed_with_a_reference_in_a_typed_param():
    step = {
        "id": "a",
        "type": "action",
        "action": "refunds.create",
        "params": {"charge": "ch_1", "amount": "{{ trigger.data.object.balance }}00"},
    }
    error = only_error(event_workflow(step))
    assert error.message.startswith("'amount' is an integer: give a literal value or exactly one")


def test_it_accepts_one_reference_for_a_typed_param():
    step = {
        "id": "a",
        "type": "action",
        "action": "refunds.create",
        "params": {"charge": "ch_1", "amount": "{{ trigger.data.object.balance }}"},
    }
    assert validate_definition(event_workflow(step)) == []


TEXT_ONLY = "Metadata values are text, numbers or booleans;"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": "v" for i in range(51)}, "Metadata has 51 keys; at most 50 are allowed"),
        ({"k" * 41: "v"}, f"Metadata key '{'k' * 41}' is longer than 40 characters"),
        ({"tier": {"level": 3}}, f"{TEXT_ONLY} 'tier' is an object"),
        ({"tier": ["gold"]}, f"{TEXT_ONLY} 'tier' is a list"),
        ({"tier": "v" * 501}, "Metadata value of 'tier' is over 500 characters"),
    ],
)
def test_it_checks_metadata_params(metadata, message):
    assert only_error(event_workflow(action("a", metadata=metadata))).message == message


def test_it_names_the_metadata_key_holding_an_object_or_a_list():
    steps = [action("a", metadata={"ok": "yes", "tier": {"level": 3}, "tags": ["a"]})]
    errors = validate_definition(event_workflow(*steps))
    assert [(e.step_id, e.field) for e in errors] == [
        ("a", "steps[0].params.metadata.tier"),
        ("a", "steps[0].params.metadata.tags"),
    ]


def test_it_accepts_numbers_booleans_and_null_as_metadata_values():
    # Written as their text when the step runs; null removes the key, as "" does.
    metadata = {"count": 3, "ratio": 0.5, "vip": True, "gone": None, "seen": "{{ run.id }}"}
    assert validate_definition(event_workflow(action("a", metadata=metadata))) == []


def test_it_runs_an_action_s_own_checks():
    step = {"id": "a", "type": "action", "action": "refunds.create", "params": {"amount": 5}}
    error = only_error(event_workflow(step))
    assert (error.field, error.message) == (
        "steps[0].params.charge",
        "Give the charge or the payment intent to refund",
    )


# --- conditions -------------------------------------------------------------------------------


def test_it_rejects_an_unknown_operator():
    conditions = {"all": [{"field": "trigger.data.object.email", "op": "like", "value": "x"}]}
    error = only_error(event_workflow(action("a"), conditions=conditions))
    assert error.field == "trigger.conditions.all[0].op"
    assert error.message.startswith("Unknown operator 'like': use eq, ne, gt")


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        ("in", "US", "'in' needs a list value, not string"),
        ("not_in", 5, "'not_in' needs a list value, not integer"),
        ("gt", [1], "'gt' compares numbers or strings, not list"),
        ("lte", True, "'lte' compares numbers or strings, not boolean"),
        ("starts_with", 5, "'starts_with' needs a string, not integer"),
        ("contains", {"a": 1}, "'contains' needs a string, number or boolean, not object"),
    ],
)
def test_it_checks_the_value_type_per_operator(op, value, message):
    conditions = {"field": "trigger.data.object.email", "op": op, "value": value}
    error = only_error(event_workflow(action("a"), conditions=conditions))
    assert (error.field, error.message) == ("trigger.conditions.value", message)


def test_it_rejects_a_value_on_a_unary_operator_and_a_missing_value():
    conditions = {
        "all": [
            {"field": "trigger.data.object.email", "op": "exists", "value": True},
            {"field": "trigger.data.object.email", "op": "eq"},
        ]
    }
    errors = validate_definition(event_workflow(action("a"), conditions=conditions))
    assert [(e.field, e.message) for e in errors] == [
        ("trigger.conditions.all[0].value", "'exists' takes no value"),
        ("trigger.conditions.all[1].value", "'eq' needs a value"),
    ]


def test_it_rejects_a_malformed_condition_group():
    conditions = {"all": [], "any": []}
    error = only_error(event_workflow(action("a"), conditions=conditions))
    assert error.message == "A condition group has exactly one key, 'all' or 'any', holding a list"


def test_it_rejects_changed_on_an_event_without_previous_attributes():
    conditions = {"field": "trigger.data.object.email", "op": "changed"}
    error = only_error(event_workflow(action("a"), conditions=conditions))
    assert error.message == "'changed' needs previous attributes, which only *.updated events have"


def test_it_requires_a_condition_on_a_condition_step():
    error = only_error(event_workflow({"id": "c", "type": "condition"}))
    assert (error.step_id, error.message) == ("c", "A condition step needs a condition")


def test_it_limits_condition_nesting():
    node: dict = {"field": "trigger.data.object.email", "op": "exists"}
    for _ in range(7):
        node = {"all": [node]}
    error = only_error(event_workflow(action("a"), conditions=node))
    assert error.message == "Conditions may be nested at most 5 deep"


# --- branches ---------------------------------------------------------------------------------


def test_it_rejects_a_branch_with_two_else_paths():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    definition["steps"][0]["paths"][0]["when"] = None
    definition["steps"][0]["paths"][0]["name"] = "Other"
    error = only_error(definition)
    assert (error.step_id, error.field) == ("region", "steps[0].paths[1].when")
    assert error.message == (
        "Branch 'region' has 2 else paths (\"when\": null); only one is allowed"
    )


def test_it_rejects_an_else_path_that_is_not_last():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    definition["steps"][0]["paths"].reverse()
    error = only_error(definition)
    assert error.field == "steps[0].paths[0].when"
    assert error.message.startswith('The else path ("when": null) must be the last path')


def test_it_requires_when_and_unique_names_on_paths():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    del definition["steps"][0]["paths"][0]["when"]
    definition["steps"][0]["paths"][1]["name"] = "North America"
    errors = validate_definition(definition)
    assert [e.message for e in errors] == [
        "Every path needs 'when': a condition, or null for the else path",
        "Two paths of this branch are named 'North America'",
    ]


# --- loops ------------------------------------------------------------------------------------


def loop(**kwargs) -> dict:
    return {
        "id": "each",
        "type": "foreach",
        "steps": [action("inner", key="subscriptions.update", subscription="{{ item.id }}")],
        **kwargs,
    }


def clean(step: dict) -> dict:
    step["steps"][0]["params"].pop("customer")
    return step


def test_it_needs_exactly_one_item_source_for_a_loop():
    error = only_error(event_workflow(clean(loop())))
    assert error.message.startswith("A loop takes its items from either 'items'")
    both = clean(loop(items="{{ trigger.data.object.metadata }}", action="subscriptions.list"))
    assert only_error(event_workflow(both)).message.startswith("A loop takes its items")


def test_it_needs_a_list_action_for_a_loop():
    error = only_error(event_workflow(clean(loop(action="customers.retrieve"))))
    assert error.field == "steps[0].action"
    assert error.message.startswith("'customers.retrieve' does not return a list")


def test_it_needs_items_to_be_one_reference():
    error = only_error(event_workflow(clean(loop(items=["a", "b"]))))
    assert error.message.startswith("'items' must be exactly one {{ reference }} to a list")


@pytest.mark.parametrize("cap", [0, 1_000_001, "ten", True])
def test_it_checks_the_loop_cap(cap):
    error = only_error(event_workflow(clean(loop(action="subscriptions.list", max_items=cap))))
    assert error.field == "steps[0].max_items"
    assert error.message == "'max_items' must be a whole number from 1 to 1000"


def test_it_needs_a_loop_body():
    step = {"id": "each", "type": "foreach", "action": "subscriptions.list", "steps": []}
    assert only_error(event_workflow(step)).message == "A loop needs at least one step in its body"


# --- references -------------------------------------------------------------------------------


def test_it_rejects_a_reference_to_a_later_step():
    first = action("first", description="{{ steps.second.output.email }}")
    error = only_error(event_workflow(first, action("second")))
    assert (error.step_id, error.field) == ("first", "steps[0].params.description")
    assert "step 'second' does not run before this step" in error.message


def test_it_rejects_a_reference_to_an_unknown_step():
    error = only_error(event_workflow(action("a", description="{{ steps.ghost.output.x }}")))
    assert error.message == "{{ steps.ghost.output.x }}: there is no step 'ghost'"


def test_it_rejects_a_reference_to_the_step_itself():
    error = only_error(event_workflow(action("a", description="{{ steps.a.output.x }}")))
    assert error.message == "{{ steps.a.output.x }}: a step cannot use its own output"


def test_it_rejects_a_reference_into_a_sibling_branch_path():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    tag_global = definition["steps"][0]["paths"][1]["steps"][0]
    tag_global["params"]["description"] = "{{ steps.tag_na.output.id }}"
    error = only_error(definition)
    assert error.step_id == "tag_global"
    assert "step 'tag_na' does not run before this step" in error.message


def test_it_rejects_a_reference_into_a_branch_from_after_it():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    definition["steps"].append(action("after", description="{{ steps.tag_na.output.id }}"))
    assert "does not run before this step" in only_error(definition).message


def test_it_allows_references_to_earlier_steps_and_enclosing_scopes():
    definition = copy.deepcopy(DESIGN_EXAMPLE)
    definition["steps"].insert(0, action("first", key="customers.retrieve"))
    definition["steps"][0]["params"].pop("description", None)
    inner = definition["steps"][1]["paths"][0]["steps"][0]
    inner["params"]["description"] = "{{ steps.first.output.email }}"
    definition["steps"].append(action("after", description="{{ steps.region.output.path }}"))
    assert validate_definition(definition) == []


def test_it_rejects_item_outside_a_loop():
    error = only_error(event_workflow(action("a", description="{{ item.id }}")))
    assert error.message == "{{ item.id }}: 'item' exists only inside a loop's steps"


def test_it_rejects_a_step_reference_without_output():
    error = only_error(event_workflow(action("a"), action("b", description="{{ steps.a.id }}")))
    assert error.message.startswith("{{ steps.a.id }}: a step's data is under steps.<id>.output")


def test_it_rejects_an_unknown_reference_root():
    error = only_error(event_workflow(action("a", description="{{ settings.SECRET_KEY }}")))
    assert error.message.startswith("{{ settings.SECRET_KEY }}: unknown root 'settings'")


def test_it_rejects_a_reference_that_is_not_a_path():
    error = only_error(event_workflow(action("a", description="{{ item.id() }}")))
    assert "is not a valid reference" in error.message


def test_it_rejects_a_formatter_outside_the_fixed_set():
    error = only_error(event_workflow(action("a", description="{{ item.id | upper }}")))
    assert error.message.startswith("Unknown formatter 'upper' in '{{ item.id | upper }}'")


def test_it_rejects_an_unknown_run_field():
    error = only_error(event_workflow(action("a", description="{{ run.secret }}")))
    assert error.message.startswith("{{ run.secret }}: 'run' has no field 'secret'")


def test_it_rejects_a_trigger_field_the_event_type_does_not_have():
    error = only_error(event_workflow(action("a", description="{{ trigger.data.object.amount }}")))
    assert error.message == (
        "{{ trigger.data.object.amount }}: 'amount' is not a field of customer in a "
        "customer.created event"
    )


def test_it_rejects_previous_attributes_on_an_event_that_has_none():
    conditions = {"field": "trigger.data.previous_attributes.email", "op": "exists"}
    error = only_error(event_workflow(action("a"), conditions=conditions))
    assert error.field == "trigger.conditions.field"
    assert "customer.created events have no previous_attributes" in error.message


def test_it_allows_any_metadata_key_and_nested_known_fields():
    conditions = {
        "all": [
            {"field": "trigger.data.object.metadata.anything_at_all", "op": "exists"},
            {"field": "trigger.data.object.address.country", "op": "eq", "value": "US"},
        ]
    }
    assert validate_definition(event_workflow(action("a"), conditions=conditions)) == []


def test_it_rejects_an_undeclared_manual_input():
    definition = copy.deepcopy(MANUAL)
    definition["steps"][0]["params"]["amount"] = "{{ trigger.input.amout }}"
    error = only_error(definition)
    assert error.message == "{{ trigger.input.amout }}: no input field 'amout' is declared"


def test_it_rejects_an_unknown_field_of_a_scheduled_trigger():
    definition = copy.deepcopy(SCHEDULE)
    definition["steps"][0]["params"]["customer"] = "{{ trigger.data.object.id }}"
    error = only_error(definition)
    assert "a scheduled run's trigger has no field 'data'" in error.message


# --- limits -----------------------------------------------------------------------------------


def test_it_counts_every_step_against_the_limit_and_not_trigger_conditions():
    steps = [action(f"s{i}") for i in range(11)]
    steps.append(
        {
            "id": "b",
            "type": "branch",
            "paths": [{"name": "p", "when": None, "steps": [action("x")]}],
        }
    )
    error = only_error(event_workflow(*steps))
    assert error.field == "steps"
    assert error.message == (
        "This workflow has 13 steps; the limit is 12 (every action, condition, branch and loop "
        "counts, nested ones too)"
    )


@override_settings(BILLFLOW={"MAX_STEPS_PER_WORKFLOW": 2, "FOREACH_MAX_ITEMS": 1000})
def test_it_takes_the_step_limit_from_settings():
    error = only_error(event_workflow(action("a"), action("b"), action("c")))
    assert error.message.startswith("This workflow has 3 steps; the limit is 2")


# --- manual input -----------------------------------------------------------------------------


def test_it_checks_manual_input_against_the_declaration():
    declared = MANUAL["trigger"]["input"]
    assert validate_manual_input(declared, {"charge": "ch_1", "amount": 5}) == []
    errors = validate_manual_input(declared, {"amount": "5", "reason": "x", "extra": 1})
    assert [(e.field, e.message) for e in errors] == [
        ("input.extra", "Input field 'extra' is not declared by this workflow"),
        ("input.charge", "Input field 'charge' is required"),
        ("input.amount", "Input field 'amount' must be an integer, not string"),
        ("input.reason", "Input field 'reason' must be one of duplicate, fraudulent; got \"x\""),
    ]


# --- the remaining rules, one case each -------------------------------------------------------


def with_step(step: dict) -> dict:
    return event_workflow(step)


def with_trigger(trigger: dict) -> dict:
    return {"name": "W", "trigger": trigger, "steps": []}


@pytest.mark.parametrize(
    ("definition", "field", "message"),
    [
        ({**event_workflow(), "name": "n" * 201}, "name", "The name is longer than 200 characters"),
        ({**event_workflow(), "description": 5}, "description", "The description must be a string"),
        ({**event_workflow(), "trigger": "event"}, "trigger", "A workflow needs a trigger object"),
        (event_workflow("step"), "steps[0]", "A step is a JSON object, not string"),
        (with_step({**action("a"), "name": 5}), "steps[0].name", "The step name must be a string"),
        (with_step({**action("a"), "params": []}), "steps[0].params", "'params' must be an object"),
        (
            with_step({"id": "b", "type": "branch", "paths": ["p"]}),
            "steps[0].paths[0]",
            "A branch path is a JSON object",
        ),
        (
            with_step(
                {"id": "b", "type": "branch", "paths": [{"name": "p", "when": None, "x": 1}]}
            ),
            "steps[0].paths[0].x",
            "Unknown key 'x' for a branch path: use name, when, steps",
        ),
        (
            with_step({"id": "b", "type": "branch", "paths": [{"when": None, "steps": {}}]}),
            "steps[0].paths[0].steps",
            "'steps' must be a list",
        ),
        (
            with_step({"id": "b", "type": "branch", "paths": [{"name": "", "when": None}]}),
            "steps[0].paths[0].name",
            "Every branch path needs a name",
        ),
        (
            with_step({"id": "l", "type": "foreach", "action": "charges.list", "steps": "x"}),
            "steps[0].steps",
            "'steps' must be a list",
        ),
        (with_trigger({"type": "event"}), "trigger.event", "An event trigger needs an event type"),
        (with_trigger({"type": "manual", "input": {}}), "trigger.input", "'input' must be a list"),
        (
            with_trigger({"type": "manual", "input": ["a"]}),
            "trigger.input[0]",
            "An input field is a JSON object with a name and a type",
        ),
        (
            with_trigger({"type": "manual", "input": [{"name": "a", "label": 1}]}),
            "trigger.input[0].label",
            "'label' must be a string",
        ),
        (
            with_step({"id": "a", "type": "action", "params": {}}),
            "steps[0].action",
            "An action step needs an action",
        ),
        (
            with_step(
                {
                    "id": "l",
                    "type": "foreach",
                    "items": "{{ trigger.data.object.metadata }}",
                    "params": {},
                    "steps": [action("x")],
                }
            ),
            "steps[0].params",
            "'params' go with 'action', not 'items'",
        ),
        (
            with_step(
                {"id": "l", "type": "foreach", "action": "nope.list", "steps": [action("x")]}
            ),
            "steps[0].action",
            "Unknown action 'nope.list'",
        ),
        (
            event_workflow(
                action("a"),
                event="customer.updated",
                conditions={"field": "steps.a.output.email", "op": "changed"},
            ),
            "trigger.conditions.field",
            "{{ steps.a.output.email }}: step 'a' does not run before this step",
        ),
        (
            event_workflow(
                action("a"),
                event="customer.updated",
                conditions={"field": "trigger.data.previous_attributes.email", "op": "changed"},
            ),
            "trigger.conditions.field",
            "'changed' works on fields of the event's object (trigger.data.object.…)",
        ),
        (
            event_workflow(action("a"), conditions={"all": "x"}),
            "trigger.conditions.all",
            "'all' must hold a list",
        ),
        (
            event_workflow(action("a"), conditions=["x"]),
            "trigger.conditions",
            'A condition is an object: {"all": [...]}, {"any": [...]} or {"field", "op", "value"}',
        ),
        (
            event_workflow(
                action("a"),
                conditions={"field": "trigger.data.object.email", "op": "exists", "not": 1},
            ),
            "trigger.conditions.not",
            "Unknown key 'not' in a condition: use field, op, value",
        ),
        (
            event_workflow(action("a"), conditions={"op": "exists"}),
            "trigger.conditions.field",
            "A condition needs a field",
        ),
        (
            {
                **MANUAL,
                "steps": [
                    {
                        "id": "r",
                        "type": "action",
                        "action": "refunds.create",
                        "params": {"charge": "{{ trigger.data.object.id }}"},
                    }
                ],
            },
            "steps[0].params.charge",
            "{{ trigger.data.object.id }}: a manual run's trigger holds only 'input'",
        ),
    ],
)
def test_it_names_the_field_of_each_remaining_rule(definition, field, message):
    errors = validate_definition(definition)
    assert any(e.field == field and e.message.startswith(message) for e in errors), errors


@pytest.fixture
def typed_action():
    from workflows.actions import registry
    from workflows.actions.registry import Action, InputField

    action_ = Action(
        key="tests.typed",
        label="Typed",
        execute=lambda ctx, params: {},
        inputs=(
            InputField("link", "url"),
            InputField("emails", "email_list"),
            InputField("users", "user_list"),
            InputField("rows", "rows"),
        ),
    )
    registry.register(action_)
    yield action_
    registry.unregister("tests.typed")


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"link": "ftp://x"}, "link", "'link' must be an http(s) URL"),
        ({"emails": ["nobody"]}, "emails[0]", "'nobody' is not an e-mail address"),
        ({"users": [""]}, "users[0]", "'' is not a user"),
        ({"rows": [{"value": 1}]}, "rows[0]", "A row is an object with a 'label' and a 'value'"),
        ({"emails": "a@example.com"}, "emails", "'emails' must be an email_list, not string"),
    ],
)
def test_it_checks_the_special_input_types(typed_action, params, field, message):
    step = {"id": "t", "type": "action", "action": "tests.typed", "params": params}
    error = only_error(event_workflow(step))
    assert (error.field, error.message) == (f"steps[0].params.{field}", message)


def test_it_checks_the_prefix_of_a_literal_object_id():
    step = {
        "id": "a",
        "type": "action",
        "action": "customers.retrieve",
        "params": {"customer": "sub_1"},
    }
    error = only_error(event_workflow(step))
    assert (error.field, error.message) == (
        "steps[0].params.customer",
        "'sub_1' is not a customer id (cus_…)",
    )


def test_it_checks_a_literal_id_exists_in_the_environment(live, sandbox):
    from tests import factories

    theirs = factories.customer(sandbox)
    mine = factories.customer(live)
    step = {"id": "a", "type": "action", "action": "customers.retrieve", "params": {}}
    step["params"]["customer"] = mine.pk
    assert validate_definition(event_workflow(step), environment=live) == []
    step["params"]["customer"] = theirs.pk
    errors = validate_definition(event_workflow(step), environment=live)
    assert [e.message for e in errors] == [f"No customer '{theirs.pk}' in the live environment"]
    assert validate_definition(event_workflow(step)) == []  # no environment: only the prefix
