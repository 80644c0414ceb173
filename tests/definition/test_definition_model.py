"""The typed workflow definition (`workflows.definition.model`): it reads every definition the
repository has and gives the same JSON back, and its shape errors name the step and the field
the way validation always did."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticError

import tests
from tests import factories
from tests.definition.test_workflow_definitions import EVERY_FEATURE
from workflows.definition import walk
from workflows.definition.model import Definition, definition_schema, written_out_models
from workflows.definition.validation import validate_definition, validate_shape
from workflows.system.catalogue import SYSTEM_WORKFLOWS, system_definition


def _looks_like_a_definition(value: object) -> bool:
    return isinstance(value, dict) and {"name", "trigger", "steps"} <= set(value)


def _literal_definitions(path: Path) -> list[tuple[str, dict]]:
    """Module-level definitions written as literals, read from the source without importing
    the module (so a test module being edited cannot break this one)."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            continue  # built by code, not a literal
        if _looks_like_a_definition(value):
            found.append((f"{path.stem}.{node.targets[0].id}", value))
    return found


def _repository_definitions() -> list[tuple[str, dict]]:
    """The system workflows' definitions, the factories' and every definition the tests keep
    as a module-level literal (the documented example, every feature, each trigger type)."""
    found = [(f"system:{spec.key}", system_definition(spec)) for spec in SYSTEM_WORKFLOWS]
    found.append(("factories.flaky_definition", factories.flaky_definition()))
    found.append(("factories.region_workflow", factories.region_workflow_definition()))
    for path in sorted(Path(tests.__file__).parent.rglob("test_*.py")):
        found.extend(_literal_definitions(path))
    return found


DEFINITIONS = _repository_definitions()


def test_the_repository_has_definitions_of_every_step_and_trigger_type():
    step_types = {s["type"] for _, d in DEFINITIONS for s in walk.steps(d)}
    assert step_types == {"action", "condition", "branch", "foreach"}
    assert {d["trigger"]["type"] for _, d in DEFINITIONS} == {"event", "manual", "schedule"}
    assert len(DEFINITIONS) > 10


@pytest.mark.parametrize(("where", "definition"), DEFINITIONS, ids=[w for w, _ in DEFINITIONS])
def test_it_round_trips_every_definition_of_the_repository_byte_for_byte(where, definition):
    original = copy.deepcopy(definition)

    back = Definition.model_validate(definition).to_json()

    assert json.dumps(back, sort_keys=True) == json.dumps(original, sort_keys=True)
    assert definition == original  # reading does not change the caller's dict


def test_it_keeps_keys_that_were_left_out_out_and_explicit_nulls_in():
    definition = {
        "name": "W",
        "trigger": {"type": "event", "event": "customer.updated"},
        "steps": [
            {
                "id": "b",
                "type": "branch",
                "paths": [
                    {
                        "name": "Has email",
                        "when": {"field": "trigger.data.object.email", "op": "exists"},
                    },
                    {"name": "Else", "when": None},
                ],
            },
            {
                "id": "c",
                "type": "condition",
                "condition": {"field": "x", "op": "eq", "value": None},
            },
        ],
    }

    back = Definition.model_validate(definition).to_json()

    assert back == definition
    assert "accounts" not in back["trigger"]
    assert "value" not in back["steps"][0]["paths"][0]["when"]
    assert back["steps"][1]["condition"]["value"] is None


def test_it_does_not_coerce_values():
    definition = {
        "name": "W",
        "trigger": {"type": "manual", "input": [{"name": "n", "required": 1}]},
        "steps": [
            {"id": "a", "type": "foreach", "items": "{{ x }}", "max_items": "5", "steps": []}
        ],
    }

    with pytest.raises(PydanticError) as caught:
        Definition.model_validate(definition)

    locations = {error["loc"] for error in caught.value.errors()}
    assert ("trigger", "manual", "input", 0, "required") in locations
    assert ("steps", 0, "foreach", "max_items") in locations


def test_shape_errors_name_the_step_and_the_field_of_nested_steps():
    definition = {
        "name": "W",
        "trigger": {"type": "event", "event": "customer.created"},
        "steps": [
            {
                "id": "loop",
                "type": "foreach",
                "items": "{{ trigger.data.object.items }}",
                "steps": [
                    {
                        "id": "route",
                        "type": "branch",
                        "paths": [
                            {
                                "name": "p",
                                "when": {"all": [{"field": "item.id", "op": "like", "value": 1}]},
                                "steps": [
                                    {"id": "tag", "type": "action", "params": [], "retry": 3}
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }

    errors = [(e.step_id, e.field, e.message) for e in validate_shape(definition)]

    inner = "steps[0].steps[0].paths[0]"
    assert errors == [
        ("route", f"{inner}.when.all[0].op", errors[0][2]),
        ("tag", f"{inner}.steps[0].params", "'params' must be an object"),
        (
            "tag",
            f"{inner}.steps[0].retry",
            "Unknown key 'retry' for a action step: use action, id, name, params, type",
        ),
    ]
    assert errors[0][2].startswith("Unknown operator 'like': use eq, ne,")


def test_a_step_with_a_bad_id_and_an_unknown_type_gets_both_errors():
    definition = {
        "name": "W",
        "trigger": {"type": "manual"},
        "steps": [{"id": "1st", "type": "wait"}],
    }

    errors = [(e.step_id, e.field) for e in validate_definition(definition)]

    assert errors == [("", "steps[0].id"), ("", "steps[0].type")]


def test_the_json_schema_describes_every_step_type_and_refuses_unknown_keys():
    schema = definition_schema()

    assert schema["additionalProperties"] is False
    steps = schema["properties"]["steps"]["items"]
    assert steps["discriminator"]["propertyName"] == "type"
    assert set(steps["discriminator"]["mapping"]) == {
        "action",
        "condition",
        "branch",
        "foreach",
        "delay",
        "approval",
    }
    assert schema["$defs"]["ConditionLeaf"]["properties"]["op"]["enum"][:2] == ["eq", "ne"]
    assert all(
        schema["$defs"][name]["additionalProperties"] is False
        for name in ("ActionStep", "BranchPath", "ConditionLeaf", "EventTrigger", "InputField")
    )


def _positions(value: object, path: tuple = ()):
    """Every key and index of a JSON value, as paths from its root."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key)
            yield from _positions(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*path, index)
            yield from _positions(child, (*path, index))


def _replaced(definition: dict, path: tuple, value: object) -> dict:
    changed = copy.deepcopy(definition)
    node = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return changed


PYDANTIC_PHRASES = ("Input should", "Field required", "Extra inputs", "String should", "Unable to")


def test_every_shape_error_is_said_in_our_words_naming_a_field():
    checked = 0
    for path in _positions(EVERY_FEATURE):
        for wrong in (5, "x", [], {}, None, True, [5], {"zz": 1}):
            for error in validate_shape(_replaced(EVERY_FEATURE, path, wrong)):
                checked += 1
                assert error.field, (path, wrong, error)
                assert not error.message.startswith(PYDANTIC_PHRASES), (path, wrong, error)
    assert checked > 500


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def test_the_written_out_schema_has_no_cycles_and_takes_the_same_definitions():
    written = written_out_models()
    schema = written.model_json_schema()
    defs = schema["$defs"]

    def reaches_itself(start: str) -> bool:
        stack, seen = list(_refs(defs[start])), set()
        while stack:
            name = stack.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                stack.extend(_refs(defs[name]))
        return False

    assert not any(reaches_itself(name) for name in defs)
    assert {"BranchStepL0", "BranchStepL3", "AllOfL0", "AllOfL4"} <= set(defs)
    for where, definition in DEFINITIONS:
        assert written.model_validate(definition).to_json() == definition, where
