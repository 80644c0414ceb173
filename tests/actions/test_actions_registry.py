"""The action registry: built-in and custom actions register the same way."""

from __future__ import annotations

import pytest

from workflows.actions import registry
from workflows.actions.registry import Action, ActionContext, ActionError, InputField
from workflows.definition.validation import validate_definition


def shout(ctx: ActionContext, params: dict) -> dict:
    return {"text": params["text"].upper(), "key": ctx.idempotency_key}


@pytest.fixture
def custom_action():
    action = Action(
        key="tests.shout",
        label="Shout",
        description="Upper-cases a text.",
        inputs=(InputField("text", "string", required=True, help="What to shout"),),
        output={"text": "HELLO", "key": "1/a/"},
        side_effects=False,
        execute=shout,
    )
    registry.register(action)
    yield action
    registry.unregister("tests.shout")


def test_it_registers_and_finds_a_custom_action(custom_action):
    assert registry.get("tests.shout") is custom_action
    assert custom_action in registry.all_actions()
    keys = [a.key for a in registry.all_actions()]
    assert keys == sorted(keys)


def test_it_runs_a_custom_action_with_its_context(custom_action):
    ctx = ActionContext(environment=None, idempotency_key="5/shout/")
    assert custom_action.execute(ctx, {"text": "hi"}) == {"text": "HI", "key": "5/shout/"}


def test_it_validates_steps_that_use_a_custom_action(custom_action):
    definition = {
        "name": "Custom",
        "trigger": {"type": "manual", "input": [{"name": "text", "type": "string"}]},
        "steps": [
            {
                "id": "s",
                "type": "action",
                "action": "tests.shout",
                "params": {"text": "{{ trigger.input.text }}"},
            }
        ],
    }
    assert validate_definition(definition) == []
    definition["steps"][0]["params"] = {}
    assert [e.message for e in validate_definition(definition)] == [
        "'text' is required for tests.shout"
    ]


def test_it_refuses_a_second_action_with_the_same_key(custom_action):
    other = Action(key="tests.shout", label="Other", execute=shout)
    with pytest.raises(ValueError, match="An action with key 'tests.shout' is already registered"):
        registry.register(other)
    registry.register(other, replace=True)
    assert registry.get("tests.shout") is other


def test_it_answers_none_for_an_unknown_key():
    assert registry.get("nope.nothing") is None


def test_it_refuses_an_unknown_input_type():
    with pytest.raises(ValueError, match="Input field 'when' has unknown type 'date'"):
        InputField("when", "date")


def test_it_labels_input_fields():
    assert InputField("starting_after").display_label == "Starting after"
    assert InputField("x", label="Custom").display_label == "Custom"


def test_it_decides_retries_by_the_error_and_the_action():
    action = Action(
        key="tests.flaky", label="Flaky", execute=shout, retryable_error_types=("rate_limited",)
    )
    assert action.is_retryable(ActionError("busy", type="rate_limited"))
    assert action.is_retryable(ActionError("down", retryable=True))
    assert not action.is_retryable(ActionError("bad input", type="invalid_request_error"))
    assert ActionError("x", param="p").as_dict() == {
        "type": "action_error",
        "message": "x",
        "retryable": False,
        "param": "p",
    }
