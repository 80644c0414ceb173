"""The model's shape errors, said the way the workflow validator has always said them.

pydantic reports an error as a location (`("steps", 0, "action", "params")`, where "action" is
the tag of the step union, not a key) and a type (`dict_type`). An operator needs the step id,
the field in the JSON form (`steps[0].params`) and a sentence naming the rule. `explain()`
walks the location alongside the submitted JSON to find both, and picks the sentence by where
the error is and what it is.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from pydantic import ValidationError as PydanticError

from workflows.definition.model import (
    ACCOUNT_SCOPES,
    DESCRIPTION_MAX_LENGTH,
    MANUAL_INPUT_TYPES,
    NAME_MAX_LENGTH,
    SERIALIZE_BY,
    STEP_ID_PATTERN,
    STEP_TYPES,
    TRIGGER_TYPES,
    ActionStep,
    ApprovalStep,
    BranchStep,
    ConditionStep,
    Definition,
    DelayStep,
    EventTrigger,
    ForeachStep,
    InputField,
    ManualTrigger,
    ScheduleTrigger,
)
from workflows.engine.conditions import OPERATORS

STEP_ID = re.compile(STEP_ID_PATTERN)
_MISSING = object()
# A position's kind -> the kind of what its key (or index) leads to. Kinds ending in "?" are
# unions: pydantic puts the chosen member's tag in the location right after them.
_CHILDREN: dict[str, dict[Any, str]] = {
    "definition": {"trigger": "trigger?", "steps": "steps"},
    "trigger": {"conditions": "condition?", "input": "inputs"},
    "inputs": {int: "input"},
    "steps": {int: "step?"},
    "step": {"paths": "paths", "steps": "steps", "condition": "condition?"},
    "paths": {int: "path"},
    "path": {"when": "condition?", "steps": "steps"},
    "group": {"all": "conditions", "any": "conditions"},
    "conditions": {int: "condition?"},
}
_STEP_MODELS = {
    "action": ActionStep,
    "condition": ConditionStep,
    "branch": BranchStep,
    "foreach": ForeachStep,
    "delay": DelayStep,
    "approval": ApprovalStep,
}
_TRIGGER_MODELS = {"event": EventTrigger, "manual": ManualTrigger, "schedule": ScheduleTrigger}
CONDITION_SHAPE = (
    'A condition is an object: {"all": [...]}, {"any": [...]} or {"field", "op", "value"}'
)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _quoted(values) -> str:
    return ", ".join(str(v) for v in values)


def _keys(model: type) -> str:
    return _quoted(sorted(model.model_fields))


def valid_step_id(value: Any) -> bool:
    return isinstance(value, str) and STEP_ID.match(value) is not None


def bad_step_id(value: Any) -> str:
    return (
        f"Step id {value!r} is not valid: use letters, digits and underscores "
        "(starting with a letter, at most 64)"
    )


def shape_errors(data: dict) -> list[tuple[str, str, str]]:
    """(step id, field, message) for every shape error of `data` (a JSON object)."""
    try:
        Definition.model_validate(data)
    except PydanticError as exc:
        # Several pydantic errors can say the same thing (two extra keys in a condition
        # group): each sentence once, in pydantic's order.
        problems: dict[tuple[str, str, str], None] = {}
        for error in exc.errors(include_url=False, include_context=False):
            for problem in explain(data, error):
                problems[problem] = None
        return list(problems)
    return []


def _child(value: Any, part: Any) -> Any:
    if isinstance(value, dict):
        return value.get(part, _MISSING)
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return _MISSING


def explain(data: dict, error: dict) -> list[tuple[str, str, str]]:
    """One pydantic error -> (step id, field, message): usually one, two for a step whose
    type and id are both wrong (pydantic stops at the type)."""
    kind, node, field, step_id = "definition", data, "", ""
    parent_kind, parent, key = "", None, None
    parts = list(error["loc"])
    index = 0
    while index < len(parts):
        part = parts[index]
        index += 1
        parent_kind, parent, key = kind, node, part
        children = _CHILDREN.get(kind, {})
        kind = children.get(int if isinstance(part, int) else part, "value")
        node = _child(node, part)
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        if kind.endswith("?"):
            if kind == "step?" and isinstance(node, dict):
                step_id = node["id"] if valid_step_id(node.get("id")) else ""
            if index < len(parts):  # the union's tag: not a key of the JSON form
                tag = parts[index]
                index += 1
                kind = {"all": "group", "any": "group", "leaf": "leaf"}.get(tag, kind[:-1])
    return _message(kind, node, parent_kind, parent, key, field, step_id, error)


def _message(
    kind: str,
    node: Any,
    parent_kind: str,
    parent: Any,
    key: Any,
    field: str,
    step_id: str,
    error: dict,
) -> list[tuple[str, str, str]]:
    error_type = error["type"]
    value = None if node is _MISSING else node
    where = field.rpartition(".")[0] if isinstance(key, str) else field

    if kind == "trigger?":
        if isinstance(node, dict):
            return [
                (
                    "",
                    "trigger.type",
                    f"Unknown trigger type '{node.get('type')}': use {_quoted(TRIGGER_TYPES)}",
                )
            ]
        return [("", "trigger", "A workflow needs a trigger object with a 'type'")]
    if kind == "step?":
        if not isinstance(node, dict):
            return [("", field, f"A step is a JSON object, not {type_name(value)}")]
        problems = []
        if not valid_step_id(node.get("id")):
            problems.append(("", f"{field}.id", bad_step_id(node.get("id"))))
        problems.append(
            (
                step_id,
                f"{field}.type",
                f"Unknown step type '{node.get('type')}': use {_quoted(STEP_TYPES)}",
            )
        )
        return problems
    if kind == "condition?":
        return [(step_id, field, CONDITION_SHAPE)]

    if error_type == "extra_forbidden":
        if parent_kind == "definition":
            return [("", field, f"Unknown key '{key}': use name, description, trigger, steps")]
        if parent_kind == "trigger":
            kind_name = parent.get("type")
            return [
                (
                    "",
                    field,
                    f"Unknown key '{key}' for a {kind_name} trigger: use "
                    f"{_keys(_TRIGGER_MODELS[kind_name])}",
                )
            ]
        if parent_kind == "input":
            return [("", field, f"Unknown key '{key}' for an input field: use {_keys(InputField)}")]
        if parent_kind == "step":
            kind_name = parent.get("type")
            return [
                (
                    step_id,
                    field,
                    f"Unknown key '{key}' for a {kind_name} step: use "
                    f"{_keys(_STEP_MODELS[kind_name])}",
                )
            ]
        if parent_kind == "path":
            return [
                (step_id, field, f"Unknown key '{key}' for a branch path: use name, when, steps")
            ]
        if parent_kind == "group":
            return [
                (
                    step_id,
                    where,
                    "A condition group has exactly one key, 'all' or 'any', holding a list",
                )
            ]
        if parent_kind == "leaf":
            return [(step_id, field, f"Unknown key '{key}' in a condition: use field, op, value")]

    message = _FIELD_MESSAGES.get((parent_kind, key if isinstance(key, str) else int))
    if message is None:
        return [(step_id, field, str(error["msg"]))]  # no sentence of ours: pydantic's
    if parent_kind in ("definition", "trigger", "inputs", "input"):
        step_id = ""
    if (parent_kind, key) == ("step", "id"):
        step_id = ""
    if (parent_kind, key) == ("step", "action") and isinstance(parent, dict):
        if parent.get("type") == "foreach":
            return [(step_id, field, f"Unknown action '{value}'")]
    if (parent_kind, key) == ("definition", "name") and error_type == "string_too_long":
        return [("", field, f"The name is longer than {NAME_MAX_LENGTH} characters")]
    if (parent_kind, key) == ("definition", "description") and error_type == "string_too_long":
        return [("", field, f"The description is longer than {DESCRIPTION_MAX_LENGTH} characters")]
    return [(step_id, field, message(value))]


_FIELD_MESSAGES = {
    ("definition", "name"): lambda v: "A workflow needs a name",
    ("definition", "description"): lambda v: "The description must be a string",
    ("definition", "steps"): lambda v: "'steps' must be a list",
    ("definition", "guardrails"): lambda v: (
        "'guardrails' must be an object: max_amount_per_run, max_amount_per_day, max_runs_per_hour"
    ),
    ("definition", "auto_deactivate"): lambda v: (
        "'auto_deactivate' must be an object: failure_rate, min_runs, window_minutes"
    ),
    ("trigger", "event"): lambda v: "An event trigger needs an event type",
    ("trigger", "accounts"): lambda v: (
        f"Unknown account scope '{v}': use {_quoted(ACCOUNT_SCOPES)}"
    ),
    ("trigger", "serialize_by"): lambda v: (
        f"Unknown serialize_by '{v}': use {_quoted(SERIALIZE_BY)}"
    ),
    ("trigger", "serialize_max_wait_minutes"): lambda v: (
        "serialize_max_wait_minutes must be a positive number of minutes"
    ),
    ("trigger", "cron"): lambda v: "A schedule trigger needs a cron expression",
    ("trigger", "input"): lambda v: "'input' must be a list of input fields",
    ("inputs", int): lambda v: "An input field is a JSON object with a name and a type",
    ("input", "name"): lambda v: (
        f"Input name {v!r} is not valid: use letters, digits and underscores"
    ),
    ("input", "type"): lambda v: f"Unknown input type '{v}': use {_quoted(MANUAL_INPUT_TYPES)}",
    ("input", "required"): lambda v: "'required' must be true or false",
    ("input", "label"): lambda v: "'label' must be a string",
    ("input", "help"): lambda v: "'help' must be a string",
    ("input", "choices"): lambda v: "'choices' must be a list",
    ("step", "id"): bad_step_id,
    ("step", "name"): lambda v: "The step name must be a string",
    ("step", "action"): lambda v: "An action step needs an action",
    ("step", "params"): lambda v: "'params' must be an object",
    ("step", "paths"): lambda v: "A branch needs a list of paths",
    ("step", "steps"): lambda v: "'steps' must be a list",
    ("step", "items"): lambda v: (
        "'items' must be exactly one {{ reference }} to a list, like "
        "{{ steps.list_subscriptions.output.data }}"
    ),
    ("step", "max_items"): lambda v: (
        f"'max_items' must be a whole number from 1 to {settings.BILLFLOW['FOREACH_MAX_ITEMS']}"
    ),
    ("paths", int): lambda v: "A branch path is a JSON object",
    ("path", "name"): lambda v: "Every branch path needs a name",
    ("path", "steps"): lambda v: "'steps' must be a list",
    ("group", "all"): lambda v: "'all' must hold a list",
    ("group", "any"): lambda v: "'any' must hold a list",
    ("leaf", "field"): lambda v: "A condition needs a field",
    ("leaf", "op"): lambda v: f"Unknown operator '{v}': use {_quoted(OPERATORS)}",
}
