"""Hostile input to the definition validator, the condition evaluator and the template resolver.

Property tests (hypothesis): any JSON gets a result or a clear, named error, never another
exception, a hang (each example has a deadline) or code execution. Templates read dict keys and
list indexes only: no settings, attributes, methods or dunders.
"""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.definition.model import STEP_TYPES, TRIGGER_TYPES
from workflows.definition.validation import (
    MAX_DEFINITION_DEPTH,
    ValidationError,
    validate_definition,
    validate_shape,
)
from workflows.engine.conditions import OPERATORS, evaluate
from workflows.engine.templating import TemplateError, resolve

pytestmark = pytest.mark.django_db
PROPERTY = settings(
    max_examples=100,
    deadline=1000,
    database=None,  # no example database written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
any_json = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=40,
)

# Text that looks like references, hostile ones included.
PATHS = [
    "trigger.data.object.id",
    "trigger.data.object.amount",
    "trigger.__class__",
    "trigger.__class__.__mro__",
    "settings.SECRET_KEY",
    "steps.x.output.__init__",
    "steps.x.output.__init__.__globals__",
    "steps.x.output.items.0",
    "steps.x.output.keys",
    "trigger.data.object.id.upper",
    "item.__dict__",
    "__import__('os').system('id')",
    "run.id",
    "",
    "0",
    "a..b",
    "a.-1",
]
reference_text = st.builds(
    lambda before, path, after, spaced: (
        before + ("{{ " + path + " }}" if spaced else "{{" + path + "}}") + after
    ),
    st.text(max_size=8),
    st.sampled_from(PATHS) | st.text(max_size=20),
    st.sampled_from(["", "{{", "}}", " tail", "{{ x"]),
    st.booleans(),
)
hostile_json = st.recursive(
    scalars | reference_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["all", "any"]), children, max_size=4
        )
    ),
    max_leaves=30,
)

CONTEXT = {
    "trigger": {"data": {"object": {"id": "cus_1", "amount": 500, "metadata": {"a": "b"}}}},
    "steps": {"x": {"output": {"items": [{"id": "in_1"}], "total": 3}}},
    "run": {"id": 7, "workflow": "wf"},
}
JSON_TYPES = (dict, list, str, int, float, bool, type(None))


def _only_json(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_json(v) for v in value)
    return isinstance(value, JSON_TYPES)


# --- definitions --------------------------------------------------------------------------------


conditions = st.recursive(
    st.fixed_dictionaries(
        {"field": st.sampled_from(PATHS) | st.text(max_size=10), "op": st.sampled_from(OPERATORS)},
        optional={"value": hostile_json},
    ),
    lambda children: st.dictionaries(
        st.sampled_from(["all", "any"]), st.lists(children, max_size=3), min_size=1, max_size=1
    ),
    max_leaves=8,
)


def _step(children):
    return st.fixed_dictionaries(
        {
            "id": st.sampled_from(["a", "b", "c", "x", "1bad", "a" * 70]) | st.text(max_size=6),
            "type": st.sampled_from(STEP_TYPES) | st.text(max_size=5),
        },
        optional={
            "action": st.sampled_from(
                ["customers.update", "http.post", "team.email", "invoices.list", "nope"]
            )
            | hostile_json,
            "params": st.dictionaries(st.text(max_size=10), hostile_json, max_size=4)
            | hostile_json,
            "condition": conditions | hostile_json,
            "items": reference_text | hostile_json,
            "max_items": st.integers() | hostile_json,
            "paths": st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(max_size=5), "when": st.none() | conditions},
                    optional={"steps": st.lists(children, max_size=2)},
                ),
                max_size=3,
            ),
            "steps": st.lists(children, max_size=2),
            "name": hostile_json,
        },
    )


steps = st.recursive(
    st.just([]), lambda children: st.lists(_step(children), max_size=3), max_leaves=6
)
near_valid_definitions = st.fixed_dictionaries(
    {
        "name": st.text(max_size=20) | hostile_json,
        "trigger": st.fixed_dictionaries(
            {"type": st.sampled_from(TRIGGER_TYPES)},
            optional={
                "event": st.sampled_from(["customer.created", "customer.updated", "nope"]),
                "conditions": conditions | hostile_json,
                "accounts": st.sampled_from(["platform", "all", "x"]),
                "cron": st.sampled_from(["0 9 * * 1", "* * *", "61 * * * *"]) | st.text(),
                "input": st.lists(
                    st.dictionaries(st.sampled_from(["name", "type", "required"]), hostile_json),
                    max_size=3,
                )
                | hostile_json,
            },
        ),
        "steps": steps,
    },
    optional={"description": hostile_json},
)


def _assert_errors(errors) -> None:
    assert isinstance(errors, list)
    for error in errors:
        assert isinstance(error, ValidationError)
        assert isinstance(error.step_id, str) and isinstance(error.field, str)
        assert isinstance(error.message, str) and error.message


@PROPERTY
@given(any_json)
def test_it_answers_any_json_definition_with_a_list_of_named_errors(definition) -> None:
    _assert_errors(validate_definition(definition))
    _assert_errors(validate_shape(definition))


@PROPERTY
@given(near_valid_definitions)
def test_it_answers_near_valid_definitions_with_named_errors(definition) -> None:
    _assert_errors(validate_definition(definition))


def _nested_steps(depth: int) -> dict:
    definition = {"name": "Deep", "trigger": {"type": "manual"}, "steps": []}
    current = definition["steps"]
    for level in range(depth):
        step = {"id": f"s{level}", "type": "foreach", "items": "{{ trigger.input.x }}"}
        step["steps"] = []
        current.append(step)
        current = step["steps"]
    return definition


def test_it_refuses_a_deeply_nested_definition_with_a_clear_error() -> None:
    errors = validate_definition(_nested_steps(5000))
    assert [e.message for e in errors] == [
        f"The definition is nested more than {MAX_DEFINITION_DEPTH} levels deep "
        "(objects and lists inside each other)"
    ]
    params = {"v": "x"}
    for _ in range(5000):
        params = {"v": params}
    deep_params = {
        "name": "Deep params",
        "trigger": {"type": "manual"},
        "steps": [{"id": "a", "type": "action", "action": "customers.update", "params": params}],
    }
    assert "nested more than" in validate_definition(deep_params)[0].message


def test_it_refuses_deeply_nested_conditions() -> None:
    condition: dict = {"field": "trigger.data.object.id", "op": "exists"}
    for _ in range(8):
        condition = {"all": [condition]}
    definition = {
        "name": "Deep conditions",
        "trigger": {"type": "event", "event": "customer.created", "conditions": condition},
        "steps": [],
    }
    messages = [e.message for e in validate_definition(definition)]
    assert "Conditions may be nested at most 5 deep" in messages


def test_it_refuses_a_loop_cap_above_the_configured_maximum() -> None:
    cap = django_settings.BILLFLOW["FOREACH_MAX_ITEMS"]
    definition = {
        "name": "Huge loop",
        "trigger": {"type": "manual", "input": [{"name": "ids", "type": "list"}]},
        "steps": [
            {
                "id": "each",
                "type": "foreach",
                "items": "{{ trigger.input.ids }}",
                "max_items": cap * 1000,
                "steps": [
                    {"id": "tag", "type": "action", "action": "customers.update", "params": {}}
                ],
            }
        ],
    }
    errors = {e.field: e.message for e in validate_definition(definition)}
    assert errors["steps[0].max_items"] == f"'max_items' must be a whole number from 1 to {cap}"


@pytest.fixture
def mail_action():
    from workflows.actions import registry
    from workflows.actions.registry import Action, InputField

    registry.register(
        Action(
            key="tests.mail",
            label="Mail",
            execute=lambda ctx, params: {},
            inputs=(
                InputField("to", "email_list"),
                InputField("subject", "string"),
                InputField("body", "text"),
            ),
        ),
        replace=True,
    )
    yield "tests.mail"
    registry.unregister("tests.mail")


def test_it_validates_huge_hostile_strings_quickly(mail_action) -> None:
    hostile = "x{{" * 30_000
    definition = {
        "name": "Slow?",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "mail",
                "type": "action",
                "action": mail_action,
                "params": {"to": ["a@" + "a." * 30_000 + "@"], "subject": hostile, "body": hostile},
            }
        ],
    }
    started = time.monotonic()
    errors = validate_definition(definition)
    assert time.monotonic() - started < 2
    assert [e.field for e in errors] == ["steps[0].params.to[0]"]
    assert "is not an e-mail address" in errors[0].message


# --- conditions ---------------------------------------------------------------------------------


@PROPERTY
@given(hostile_json)
def test_it_evaluates_any_json_condition_to_a_bool_or_a_value_error(condition) -> None:
    try:
        result = evaluate(condition, CONTEXT)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(result, bool)


@PROPERTY
@given(conditions)
def test_it_evaluates_well_formed_trees_with_hostile_values(condition) -> None:
    assert isinstance(evaluate(condition, CONTEXT), bool)


def test_it_refuses_a_condition_tree_deeper_than_its_limit() -> None:
    condition: dict = {"field": "trigger.data.object.id", "op": "exists"}
    for _ in range(5000):
        condition = {"any": [condition]}
    with pytest.raises(ValueError, match="nested at most"):
        evaluate(condition, CONTEXT)


def test_conditions_cannot_read_attributes_or_settings() -> None:
    for field in ("trigger.__class__", "trigger.data.object.id.upper", "settings.SECRET_KEY"):
        assert evaluate({"field": field, "op": "exists"}, CONTEXT) is False
        assert evaluate({"field": field, "op": "not_exists"}, CONTEXT) is True
    leak = {"field": "trigger.data.object.id", "op": "eq", "value": "{{ settings.SECRET_KEY }}"}
    assert evaluate(leak, CONTEXT) is False


# --- templates ----------------------------------------------------------------------------------


@PROPERTY
@given(hostile_json)
def test_it_resolves_any_json_to_json_or_a_template_error(value) -> None:
    try:
        result = resolve(value, CONTEXT)
    except TemplateError as exc:
        assert exc.message and isinstance(exc.path, str)
    else:
        assert _only_json(result)


@pytest.mark.parametrize(
    "template",
    [
        "{{ trigger.__class__ }}",
        "{{ settings.SECRET_KEY }}",
        "{{ steps.x.output.__init__ }}",
        "{{ steps.x.output.__init__.__globals__ }}",
        "{{ steps.x.output.keys }}",
        "{{ steps.x.output.items.__len__ }}",
        "{{ trigger.data.object.id.upper }}",
        "{{ steps.x.output.total.real }}",
        "{{ __import__('os').system('id') }}",
        "{{ trigger.data.object.id|upper }}",
        "{{ config.settings }}",
        "Total: {{ steps.x.output.__class__.__name__ }}",
    ],
)
def test_templates_cannot_reach_settings_attributes_or_methods(template: str) -> None:
    with pytest.raises(TemplateError):
        resolve(template, CONTEXT)


def test_templates_read_only_keys_even_of_objects_put_in_the_context() -> None:
    # Even if a Python object slipped into a context, a path could not walk its attributes.
    context = {**CONTEXT, "obj": django_settings}
    with pytest.raises(TemplateError, match="has no field 'SECRET_KEY'"):
        resolve("{{ obj.SECRET_KEY }}", context)


def test_templates_run_no_code(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        f"{{{{ __import__('pathlib').Path('{marker}').touch() }}}}",
        f"{{% load os %}}{{{{ open('{marker}', 'w') }}}}",
        "${7*7} #{7*7} {{7*7}}",
    ]
    for payload in payloads:
        try:
            result = resolve(payload, CONTEXT)
        except TemplateError:
            continue
        assert "49" not in str(result)
    assert not marker.exists()


def test_it_resolves_a_huge_hostile_string_quickly() -> None:
    started = time.monotonic()
    assert resolve("x{{" * 50_000, CONTEXT) == "x{{" * 50_000
    assert time.monotonic() - started < 2


# A step's output fields are known only at run time, so `steps.tag.output.__init__` passes the
# validator and fails when resolved (test_templates_cannot_reach_settings_attributes_or_methods).
@pytest.mark.parametrize("reference", ["{{ trigger.__class__ }}", "{{ settings.SECRET_KEY }}"])
def test_the_validator_refuses_references_to_attributes_and_settings(reference: str) -> None:
    definition = {
        "name": "Leak",
        "trigger": {"type": "event", "event": "customer.created"},
        "steps": [
            {
                "id": "tag",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.data.object.id }}", "description": "x"},
            },
            {
                "id": "again",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.data.object.id }}", "description": reference},
            },
        ],
    }
    errors = [e for e in validate_definition(definition) if e.step_id == "again"]
    assert [e.field for e in errors] == ["steps[1].params.description"]
