"""Checks a workflow's JSON form. Every error names the step id and the field.

`validate_definition(definition)` returns a list of `ValidationError(step_id, field, message)`;
`field` is a path into the JSON form, like "steps[2].params.customer" or
"trigger.conditions.all[0].op". An empty list means the definition can be published.
Shape errors (what could not even be stored) come alone: the deeper checks need a sound shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from django.conf import settings

from workflows import event_types
from workflows.actions import registry
from workflows.definitions import count_steps
from workflows.engine.conditions import OPERATORS, UNARY_OPERATORS
from workflows.engine.templating import TemplateError, is_single_reference, parse_path, references

STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TRIGGER_TYPES = ("event", "manual", "schedule")
ACCOUNT_SCOPES = ("platform", "connected", "all")
MANUAL_INPUT_TYPES = ("string", "integer", "number", "boolean", "object", "list")
# Fields of `run` in the run context (the executor builds it: docs/workflows.md).
RUN_FIELDS = ("id", "workflow")
# Fields of `trigger` for schedule runs: {"schedule": {"cron", "at", "slot"}}.
SCHEDULE_TRIGGER_FIELDS = ("schedule",)
MAX_CONDITION_DEPTH = 5
# Nesting of the JSON itself (objects and lists): deep enough for every real workflow, shallow
# enough that nothing here or in the engine recurses anywhere near Python's limit.
MAX_DEFINITION_DEPTH = 32
# RFC 5321: an address is at most 254 characters; checking first keeps EMAIL's backtracking short.
MAX_EMAIL_LENGTH = 254
# InputField.object_type -> the billing model whose ids it takes.
OBJECT_MODELS = {
    "customer": "Customer",
    "subscription": "Subscription",
    "invoice": "Invoice",
    "payment_intent": "PaymentIntent",
    "charge": "Charge",
    "refund": "Refund",
}
STEP_KEYS = {
    "action": {"id", "type", "name", "action", "params"},
    "condition": {"id", "type", "name", "condition"},
    "branch": {"id", "type", "name", "paths"},
    "foreach": {"id", "type", "name", "items", "action", "params", "max_items", "steps"},
}
TRIGGER_KEYS = {
    "event": {"type", "event", "accounts", "conditions"},
    "manual": {"type", "input"},
    "schedule": {"type", "cron"},
}


@dataclass(frozen=True)
class ValidationError:
    step_id: str
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"step_id": self.step_id, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = f"step '{self.step_id}', " if self.step_id else ""
        return f"{where}{self.field}: {self.message}"


class DefinitionInvalid(Exception):
    def __init__(self, errors: list[ValidationError]) -> None:
        super().__init__("; ".join(str(e) for e in errors[:5]))
        self.errors = errors


def _type_name(value: Any) -> str:
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


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _quoted(values) -> str:
    return ", ".join(str(v) for v in values)


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """True when objects and lists nest deeper than `limit`; iterative, so any input is safe."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


@dataclass
class _Scope:
    """What a reference may see at one point of the definition."""

    visible_steps: frozenset[str]
    in_loop: bool


class _Validator:
    def __init__(self, definition: Any, environment: Any = None) -> None:
        self.definition = definition
        self.environment = environment
        self.errors: list[ValidationError] = []
        self.trigger: dict = {}
        self.all_step_ids: set[str] = set()

    def error(self, step_id: str, field: str, message: str) -> None:
        self.errors.append(ValidationError(step_id, field, message))

    # --- shape --------------------------------------------------------------------------

    def shape(self) -> None:
        d = self.definition
        if not isinstance(d, dict):
            self.error("", "", f"A workflow definition is a JSON object, not {_type_name(d)}")
            return
        if _nesting_exceeds(d, MAX_DEFINITION_DEPTH):
            self.error(
                "",
                "",
                f"The definition is nested more than {MAX_DEFINITION_DEPTH} levels deep "
                "(objects and lists inside each other)",
            )
            return
        for key in sorted(set(d) - {"name", "description", "trigger", "steps"}):
            self.error("", key, f"Unknown key '{key}': use name, description, trigger, steps")
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            self.error("", "name", "A workflow needs a name")
        elif len(name) > 200:
            self.error("", "name", "The name is longer than 200 characters")
        if "description" in d and not isinstance(d["description"], str):
            self.error("", "description", "The description must be a string")
        trigger = d.get("trigger")
        if not isinstance(trigger, dict):
            self.error("", "trigger", "A workflow needs a trigger object with a 'type'")
        elif trigger.get("type") not in TRIGGER_TYPES:
            self.error(
                "",
                "trigger.type",
                f"Unknown trigger type '{trigger.get('type')}': use {_quoted(TRIGGER_TYPES)}",
            )
        else:
            for key in sorted(set(trigger) - TRIGGER_KEYS[trigger["type"]]):
                self.error(
                    "",
                    f"trigger.{key}",
                    f"Unknown key '{key}' for a {trigger['type']} trigger: use "
                    f"{_quoted(sorted(TRIGGER_KEYS[trigger['type']]))}",
                )
        steps = d.get("steps")
        if not isinstance(steps, list):
            self.error("", "steps", "'steps' must be a list")
        else:
            self.shape_steps(steps, "steps")

    def shape_steps(self, steps: list, where: str) -> None:
        for index, step in enumerate(steps):
            field = f"{where}[{index}]"
            if not isinstance(step, dict):
                self.error("", field, f"A step is a JSON object, not {_type_name(step)}")
                continue
            step_id = step.get("id")
            if not isinstance(step_id, str) or not STEP_ID.match(step_id):
                self.error(
                    "",
                    f"{field}.id",
                    f"Step id {step_id!r} is not valid: use letters, digits and underscores "
                    "(starting with a letter, at most 64)",
                )
                step_id = ""
            elif step_id in self.all_step_ids:
                self.error(
                    step_id,
                    f"{field}.id",
                    f"Duplicate step id '{step_id}': step ids must be unique in the whole "
                    "workflow, nested steps included",
                )
            else:
                self.all_step_ids.add(step_id)
            kind = step.get("type")
            if kind not in STEP_KEYS:
                self.error(
                    step_id,
                    f"{field}.type",
                    f"Unknown step type '{kind}': use {_quoted(STEP_KEYS)}",
                )
                continue
            for key in sorted(set(step) - STEP_KEYS[kind]):
                self.error(
                    step_id,
                    f"{field}.{key}",
                    f"Unknown key '{key}' for a {kind} step: use "
                    f"{_quoted(sorted(STEP_KEYS[kind]))}",
                )
            if "name" in step and not isinstance(step["name"], str):
                self.error(step_id, f"{field}.name", "The step name must be a string")
            if kind in {"action", "foreach"} and "params" in step:
                if not isinstance(step["params"], dict):
                    self.error(step_id, f"{field}.params", "'params' must be an object")
            if kind == "branch":
                paths = step.get("paths")
                if not isinstance(paths, list) or not paths:
                    self.error(step_id, f"{field}.paths", "A branch needs a list of paths")
                    continue
                for p_index, path in enumerate(paths):
                    p_field = f"{field}.paths[{p_index}]"
                    if not isinstance(path, dict):
                        self.error(step_id, p_field, "A branch path is a JSON object")
                        continue
                    for key in sorted(set(path) - {"name", "when", "steps"}):
                        self.error(
                            step_id,
                            f"{p_field}.{key}",
                            f"Unknown key '{key}' for a branch path: use name, when, steps",
                        )
                    if not isinstance(path.get("steps", []), list):
                        self.error(step_id, f"{p_field}.steps", "'steps' must be a list")
                    else:
                        self.shape_steps(path.get("steps", []), f"{p_field}.steps")
            if kind == "foreach":
                if not isinstance(step.get("steps", []), list):
                    self.error(step_id, f"{field}.steps", "'steps' must be a list")
                else:
                    self.shape_steps(step.get("steps", []), f"{field}.steps")

    # --- meaning ------------------------------------------------------------------------

    def meaning(self) -> None:
        self.trigger = self.definition["trigger"]
        self.check_trigger()
        self.check_steps(
            self.definition["steps"], "steps", _Scope(visible_steps=frozenset(), in_loop=False)
        )
        limit = settings.BILLFLOW["MAX_STEPS_PER_WORKFLOW"]
        total = count_steps(self.definition["steps"])
        if total > limit:
            self.error(
                "",
                "steps",
                f"This workflow has {total} steps; the limit is {limit} (every action, "
                "condition, branch and loop counts, nested ones too)",
            )

    def check_trigger(self) -> None:
        t = self.trigger
        if t["type"] == "event":
            event = t.get("event")
            if not isinstance(event, str) or not event:
                self.error("", "trigger.event", "An event trigger needs an event type")
            elif not event_types.is_known(event):
                self.error("", "trigger.event", f"Unknown event type '{event}'")
            if t.get("accounts", "platform") not in ACCOUNT_SCOPES:
                self.error(
                    "",
                    "trigger.accounts",
                    f"Unknown account scope '{t.get('accounts')}': use {_quoted(ACCOUNT_SCOPES)}",
                )
            if t.get("conditions") is not None:
                self.check_condition(
                    t["conditions"],
                    "",
                    "trigger.conditions",
                    _Scope(visible_steps=frozenset(), in_loop=False),
                    depth=0,
                )
        elif t["type"] == "manual":
            self.check_manual_input(t.get("input", []))
        else:
            cron = t.get("cron")
            if not isinstance(cron, str) or not cron.strip():
                self.error("", "trigger.cron", "A schedule trigger needs a cron expression")
            elif len(cron.split()) != 5 or not croniter.is_valid(cron):
                self.error(
                    "",
                    "trigger.cron",
                    f"'{cron}' is not a valid cron expression (five fields: minute hour "
                    "day-of-month month day-of-week, like '0 9 * * 1')",
                )

    def check_manual_input(self, declared: Any) -> None:
        if not isinstance(declared, list):
            self.error("", "trigger.input", "'input' must be a list of input fields")
            return
        names: set[str] = set()
        for index, item in enumerate(declared):
            field = f"trigger.input[{index}]"
            if not isinstance(item, dict):
                self.error("", field, "An input field is a JSON object with a name and a type")
                continue
            allowed = {"name", "type", "required", "label", "help", "choices"}
            for key in sorted(set(item) - allowed):
                self.error(
                    "",
                    f"{field}.{key}",
                    f"Unknown key '{key}' for an input field: use {_quoted(sorted(allowed))}",
                )
            name = item.get("name")
            if not isinstance(name, str) or not INPUT_NAME.match(name):
                self.error(
                    "",
                    f"{field}.name",
                    f"Input name {name!r} is not valid: use letters, digits and underscores",
                )
            elif name in names:
                self.error("", f"{field}.name", f"Duplicate input name '{name}'")
            else:
                names.add(name)
            if item.get("type", "string") not in MANUAL_INPUT_TYPES:
                self.error(
                    "",
                    f"{field}.type",
                    f"Unknown input type '{item.get('type')}': use {_quoted(MANUAL_INPUT_TYPES)}",
                )
            if "required" in item and not isinstance(item["required"], bool):
                self.error("", f"{field}.required", "'required' must be true or false")
            for key in ("label", "help"):
                if key in item and not isinstance(item[key], str):
                    self.error("", f"{field}.{key}", f"'{key}' must be a string")
            if "choices" in item and not isinstance(item["choices"], list):
                self.error("", f"{field}.choices", "'choices' must be a list")

    # --- steps --------------------------------------------------------------------------

    def check_steps(self, steps: list[dict], where: str, scope: _Scope) -> None:
        visible = set(scope.visible_steps)
        for index, step in enumerate(steps):
            field = f"{where}[{index}]"
            here = _Scope(visible_steps=frozenset(visible), in_loop=scope.in_loop)
            kind = step["type"]
            if kind == "action":
                self.check_action_step(step, field, here)
            elif kind == "condition":
                if step.get("condition") is None:
                    self.error(
                        step["id"], f"{field}.condition", "A condition step needs a condition"
                    )
                else:
                    self.check_condition(
                        step["condition"], step["id"], f"{field}.condition", here, depth=0
                    )
            elif kind == "branch":
                self.check_branch(step, field, here)
            elif kind == "foreach":
                self.check_foreach(step, field, here)
            visible.add(step["id"])

    def check_action_step(self, step: dict, field: str, scope: _Scope) -> None:
        key = step.get("action")
        if not isinstance(key, str) or not key:
            self.error(step["id"], f"{field}.action", "An action step needs an action")
            return
        action = registry.get(key)
        if action is None:
            self.error(step["id"], f"{field}.action", f"Unknown action '{key}'")
            return
        self.check_params(action, step.get("params", {}), step["id"], f"{field}.params", scope)

    def check_params(
        self, action: registry.Action, params: Any, step_id: str, where: str, scope: _Scope
    ) -> None:
        if not isinstance(params, dict):
            return  # reported by the shape check
        names = {f.name for f in action.inputs}
        for name in params:
            if name not in names:
                self.error(
                    step_id,
                    f"{where}.{name}",
                    f"Unknown parameter '{name}' for {action.key}: use "
                    f"{_quoted(sorted(names)) or 'no parameters'}",
                )
        for input_field in action.inputs:
            value = params.get(input_field.name)
            field = f"{where}.{input_field.name}"
            if value is None or value == "":
                if input_field.required:
                    self.error(
                        step_id,
                        field,
                        f"'{input_field.name}' is required for {action.key}",
                    )
                continue
            self.check_references(value, step_id, field, scope)
            self.check_param_type(input_field, value, step_id, field)
        if action.validate_params is not None:
            for name, message in action.validate_params(params):
                self.error(step_id, f"{where}.{name}" if name else where, message)

    def check_param_type(
        self, input_field: registry.InputField, value: Any, step_id: str, field: str
    ) -> None:
        kind = input_field.type
        textual = kind in {"string", "text", "url"}
        if isinstance(value, str) and references(value):
            if not textual and not is_single_reference(value):
                self.error(
                    step_id,
                    field,
                    f"'{input_field.name}' is {_a(kind)}: give a literal value or exactly one "
                    "{{ reference }}, not text mixed with references",
                )
            return  # the referenced value's type is known only at run time
        expected = {
            "string": str,
            "text": str,
            "url": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
            "object": dict,
            "metadata": dict,
            "list": list,
            "email_list": list,
            "user_list": list,
            "rows": list,
        }.get(kind)
        wrong = expected is not None and (
            not isinstance(value, expected)
            or (isinstance(value, bool) and kind in {"integer", "number"})
        )
        if wrong:
            self.error(
                step_id,
                field,
                f"'{input_field.name}' must be {_a(kind)}, not {_type_name(value)}",
            )
            return
        if input_field.choices and value not in input_field.choices:
            self.error(
                step_id,
                field,
                f"'{value}' is not a valid choice for '{input_field.name}': use "
                f"{_quoted(input_field.choices)}",
            )
        if input_field.object_type and isinstance(value, str):
            self.check_object_id(input_field, value, step_id, field)
        if kind == "url" and not value.startswith(("http://", "https://")):
            self.error(step_id, field, f"'{input_field.name}' must be an http(s) URL")
        if kind == "metadata":
            self.check_metadata(value, step_id, field)
        if kind == "email_list":
            for index, item in enumerate(value):
                literal = isinstance(item, str) and not references(item)
                valid = literal and len(item) <= MAX_EMAIL_LENGTH and EMAIL.match(item)
                if not isinstance(item, str) or (literal and not valid):
                    self.error(step_id, f"{field}[{index}]", f"{item!r} is not an e-mail address")
        if kind == "user_list":
            for index, item in enumerate(value):
                if not isinstance(item, str) or not item:
                    self.error(step_id, f"{field}[{index}]", f"{item!r} is not a user")
        if kind == "rows":
            for index, row in enumerate(value):
                if not isinstance(row, dict) or set(row) - {"label", "value"} or "label" not in row:
                    self.error(
                        step_id,
                        f"{field}[{index}]",
                        "A row is an object with a 'label' and a 'value'",
                    )

    def check_object_id(
        self, input_field: registry.InputField, value: str, step_id: str, field: str
    ) -> None:
        from billing import models as billing_models

        model = OBJECT_MODELS.get(input_field.object_type)
        if model is None:
            return
        model_class = getattr(billing_models, model)
        if not value.startswith(f"{model_class.ID_PREFIX}_"):
            self.error(
                step_id,
                field,
                f"'{value}' is not a {input_field.object_type.replace('_', ' ')} id "
                f"({model_class.ID_PREFIX}_…)",
            )
        elif self.environment is not None:
            if not model_class.objects.filter(environment=self.environment, pk=value).exists():
                self.error(
                    step_id,
                    field,
                    f"No {input_field.object_type.replace('_', ' ')} '{value}' in the "
                    f"{self.environment.slug} environment",
                )

    def check_metadata(self, value: dict, step_id: str, field: str) -> None:
        if len(value) > 50:
            self.error(step_id, field, f"Metadata has {len(value)} keys; at most 50 are allowed")
        for key, item in value.items():
            if len(key) > 40:
                self.error(
                    step_id, f"{field}.{key}", f"Metadata key '{key}' is longer than 40 characters"
                )
            if not isinstance(item, str):
                self.error(
                    step_id,
                    f"{field}.{key}",
                    f"Metadata values are strings; '{key}' is {_type_name(item)}",
                )
            elif len(item) > 500 and not references(item):
                self.error(
                    step_id, f"{field}.{key}", f"Metadata value of '{key}' is over 500 characters"
                )

    def check_branch(self, step: dict, field: str, scope: _Scope) -> None:
        else_paths: list[int] = []
        names: set[str] = set()
        paths = step["paths"]
        for index, path in enumerate(paths):
            p_field = f"{field}.paths[{index}]"
            if not isinstance(path, dict):
                continue
            name = path.get("name")
            if not isinstance(name, str) or not name.strip():
                self.error(step["id"], f"{p_field}.name", "Every branch path needs a name")
            elif name in names:
                self.error(
                    step["id"], f"{p_field}.name", f"Two paths of this branch are named '{name}'"
                )
            else:
                names.add(name)
            if "when" not in path:
                self.error(
                    step["id"],
                    f"{p_field}.when",
                    "Every path needs 'when': a condition, or null for the else path",
                )
            elif path["when"] is None:
                else_paths.append(index)
            else:
                self.check_condition(path["when"], step["id"], f"{p_field}.when", scope, depth=0)
            self.check_steps(path.get("steps", []), f"{p_field}.steps", scope)
        if len(else_paths) > 1:
            self.error(
                step["id"],
                f"{field}.paths[{else_paths[1]}].when",
                f"Branch '{step['id']}' has {len(else_paths)} else paths (\"when\": null); "
                "only one is allowed",
            )
        elif else_paths and else_paths[0] != len(paths) - 1:
            self.error(
                step["id"],
                f"{field}.paths[{else_paths[0]}].when",
                'The else path ("when": null) must be the last path: paths after it could '
                "never be chosen",
            )

    def check_foreach(self, step: dict, field: str, scope: _Scope) -> None:
        step_id = step["id"]
        has_items, has_action = "items" in step, "action" in step
        if has_items == has_action:
            self.error(
                step_id,
                field,
                "A loop takes its items from either 'items' (a {{ reference }} to a list) or "
                "'action' (a list action), exactly one of them",
            )
        elif has_items:
            if "params" in step:
                self.error(step_id, f"{field}.params", "'params' go with 'action', not 'items'")
            items = step["items"]
            if not is_single_reference(items):
                self.error(
                    step_id,
                    f"{field}.items",
                    "'items' must be exactly one {{ reference }} to a list, like "
                    "{{ steps.list_subscriptions.output.data }}",
                )
            else:
                self.check_references(items, step_id, f"{field}.items", scope)
        else:
            key = step["action"]
            action = registry.get(key) if isinstance(key, str) else None
            if action is None:
                self.error(step_id, f"{field}.action", f"Unknown action '{key}'")
            elif not action.is_list_source:
                self.error(
                    step_id,
                    f"{field}.action",
                    f"'{key}' does not return a list; a loop needs a list action such as "
                    f"{_quoted(a.key for a in registry.all_actions() if a.is_list_source)}",
                )
            else:
                self.check_params(action, step.get("params", {}), step_id, f"{field}.params", scope)
        if "max_items" in step:
            cap = settings.BILLFLOW["FOREACH_MAX_ITEMS"]
            value = step["max_items"]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= cap:
                self.error(
                    step_id,
                    f"{field}.max_items",
                    f"'max_items' must be a whole number from 1 to {cap}",
                )
        if not step.get("steps"):
            self.error(step_id, f"{field}.steps", "A loop needs at least one step in its body")
        inner = _Scope(visible_steps=scope.visible_steps, in_loop=True)
        self.check_steps(step.get("steps", []), f"{field}.steps", inner)

    # --- conditions ---------------------------------------------------------------------

    def check_condition(
        self, node: Any, step_id: str, where: str, scope: _Scope, *, depth: int
    ) -> None:
        if depth > MAX_CONDITION_DEPTH:
            self.error(
                step_id, where, f"Conditions may be nested at most {MAX_CONDITION_DEPTH} deep"
            )
            return
        if not isinstance(node, dict):
            self.error(
                step_id,
                where,
                'A condition is an object: {"all": [...]}, {"any": [...]} or '
                '{"field", "op", "value"}',
            )
            return
        groups = [key for key in ("all", "any") if key in node]
        if groups:
            if len(node) != 1:
                self.error(
                    step_id,
                    where,
                    "A condition group has exactly one key, 'all' or 'any', holding a list",
                )
                return
            children = node[groups[0]]
            if not isinstance(children, list):
                self.error(step_id, f"{where}.{groups[0]}", f"'{groups[0]}' must hold a list")
                return
            for index, child in enumerate(children):
                self.check_condition(
                    child, step_id, f"{where}.{groups[0]}[{index}]", scope, depth=depth + 1
                )
            return
        for key in sorted(set(node) - {"field", "op", "value"}):
            self.error(
                step_id,
                f"{where}.{key}",
                f"Unknown key '{key}' in a condition: use field, op, value",
            )
        field = node.get("field")
        if not isinstance(field, str) or not field:
            self.error(step_id, f"{where}.field", "A condition needs a field")
        else:
            self.check_path(field, step_id, f"{where}.field", scope)
        op = node.get("op")
        if op not in OPERATORS:
            self.error(step_id, f"{where}.op", f"Unknown operator '{op}': use {_quoted(OPERATORS)}")
            return
        self.check_condition_value(node, op, step_id, where, scope)
        if op == "changed":
            event = self.trigger.get("event", "")
            if self.trigger.get("type") != "event" or not event_types.has_previous_attributes(
                event
            ):
                self.error(
                    step_id,
                    f"{where}.op",
                    "'changed' needs previous attributes, which only *.updated events have",
                )
            elif isinstance(field, str) and not field.startswith("trigger.data.object."):
                self.error(
                    step_id,
                    f"{where}.field",
                    "'changed' works on fields of the event's object (trigger.data.object.…)",
                )

    def check_condition_value(
        self, node: dict, op: str, step_id: str, where: str, scope: _Scope
    ) -> None:
        field = f"{where}.value"
        if op in UNARY_OPERATORS:
            if "value" in node:
                self.error(step_id, field, f"'{op}' takes no value")
            return
        if "value" not in node:
            self.error(step_id, field, f"'{op}' needs a value")
            return
        value = node["value"]
        if isinstance(value, str) and references(value):
            self.check_references(value, step_id, field, scope)
            if is_single_reference(value):
                return  # the type is known only at run time
        if op in {"in", "not_in"}:
            if not isinstance(value, list):
                self.error(step_id, field, f"'{op}' needs a list value, not {_type_name(value)}")
            else:
                for item in value:
                    if isinstance(item, str) and references(item):
                        self.check_references(item, step_id, field, scope)
        elif op in {"gt", "gte", "lt", "lte"}:
            if _type_name(value) not in {"integer", "number", "string"}:
                self.error(
                    step_id,
                    field,
                    f"'{op}' compares numbers or strings, not {_type_name(value)}",
                )
        elif op == "starts_with":
            if not isinstance(value, str):
                self.error(step_id, field, f"'starts_with' needs a string, not {_type_name(value)}")
        elif op in {"contains", "not_contains"}:
            if isinstance(value, (list, dict)) or value is None:
                self.error(
                    step_id,
                    field,
                    f"'{op}' needs a string, number or boolean, not {_type_name(value)}",
                )

    # --- references ---------------------------------------------------------------------

    def check_references(self, value: Any, step_id: str, field: str, scope: _Scope) -> None:
        for path in references(value):
            self.check_path(path, step_id, field, scope)

    def check_path(self, path: str, step_id: str, field: str, scope: _Scope) -> None:
        try:
            segments = parse_path(path)
        except TemplateError as exc:
            self.error(step_id, field, exc.message)
            return
        root = segments[0]
        if root == "trigger":
            problem = self.trigger_problem(segments[1:])
            if problem:
                self.error(step_id, field, f"{{{{ {path} }}}}: {problem}")
        elif root == "steps":
            if len(segments) < 3 or segments[2] != "output":
                self.error(
                    step_id,
                    field,
                    f"{{{{ {path} }}}}: a step's data is under steps.<id>.output, like "
                    "steps.get_customer.output.email",
                )
                return
            target = segments[1]
            if target in scope.visible_steps:
                return
            if target == step_id:
                message = "a step cannot use its own output"
            elif target in self.all_step_ids:
                message = (
                    f"step '{target}' does not run before this step (it is later, inside "
                    "another branch path or loop, or an enclosing step)"
                )
            else:
                message = f"there is no step '{target}'"
            self.error(step_id, field, f"{{{{ {path} }}}}: {message}")
        elif root == "item":
            if not scope.in_loop:
                self.error(
                    step_id,
                    field,
                    f"{{{{ {path} }}}}: 'item' exists only inside a loop's steps",
                )
        elif root == "run":
            if len(segments) > 1 and segments[1] not in RUN_FIELDS:
                self.error(
                    step_id,
                    field,
                    f"{{{{ {path} }}}}: 'run' has no field '{segments[1]}' (use "
                    f"{_quoted(RUN_FIELDS)})",
                )
        else:
            self.error(
                step_id,
                field,
                f"{{{{ {path} }}}}: unknown root '{root}': a reference starts with trigger, "
                "steps, item or run",
            )

    def trigger_problem(self, segments: list[str]) -> str:
        kind = self.trigger.get("type")
        if kind == "event":
            return event_types.trigger_field_problem(self.trigger.get("event", ""), segments)
        if kind == "manual":
            if not segments or segments[0] != "input":
                return "a manual run's trigger holds only 'input'"
            declared = self.trigger.get("input")
            names = (
                {i.get("name") for i in declared if isinstance(i, dict)}
                if isinstance(declared, list)
                else set()
            )
            if len(segments) > 1 and segments[1] not in names:
                return f"no input field '{segments[1]}' is declared"
            return ""
        if segments and segments[0] not in SCHEDULE_TRIGGER_FIELDS:
            return (
                f"a scheduled run's trigger has no field '{segments[0]}' (use "
                f"{_quoted(SCHEDULE_TRIGGER_FIELDS)})"
            )
        return ""


def validate_shape(definition: Any) -> list[ValidationError]:
    """Only the checks a definition must pass to be stored (a draft may be incomplete)."""
    validator = _Validator(definition)
    validator.shape()
    return validator.errors


def validate_definition(definition: Any, *, environment: Any = None) -> list[ValidationError]:
    """Every problem with `definition`; an empty list means it can be published."""
    validator = _Validator(definition, environment)
    validator.shape()
    if validator.errors:
        return validator.errors
    validator.meaning()
    return validator.errors


def validate_manual_input(declared: list[dict], data: Any) -> list[ValidationError]:
    """Checks a manual run's input against the trigger's declared input fields."""
    if not isinstance(data, dict):
        return [ValidationError("", "input", "The input must be a JSON object")]
    errors: list[ValidationError] = []
    names = {item["name"] for item in declared}
    for key in data:
        if key not in names:
            errors.append(ValidationError("", f"input.{key}", f"Unknown input field '{key}'"))
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
    }
    for item in declared:
        name, kind = item["name"], item.get("type", "string")
        if name not in data or data[name] is None:
            if item.get("required"):
                errors.append(ValidationError("", f"input.{name}", f"'{name}' is required"))
            continue
        value = data[name]
        if not checks.get(kind, lambda v: True)(value):
            errors.append(
                ValidationError(
                    "", f"input.{name}", f"'{name}' must be {_a(kind)}, not {_type_name(value)}"
                )
            )
        elif item.get("choices") and value not in item["choices"]:
            errors.append(
                ValidationError(
                    "",
                    f"input.{name}",
                    f"'{value}' is not a valid choice for '{name}': use {_quoted(item['choices'])}",
                )
            )
    return errors
