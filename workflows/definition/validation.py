"""Checks a workflow's JSON form. Every error names the step id and the field.

`validate_definition(definition)` returns a list of `ValidationError(step_id, field, message)`;
`field` is a path into the JSON form, like "steps[2].params.customer" or
"trigger.conditions.all[0].op". An empty list means the definition can be published.
Shape errors (what could not even be stored) come alone: the deeper checks need a sound shape.
The shape is the typed model's (`workflows.definition.model`); what a definition means
(events, actions, references and their scopes, limits, billing ids) is checked here by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from django.conf import settings

from workflows.actions import registry
from workflows.definition import event_types, walk
from workflows.definition.errors import shape_errors, type_name
from workflows.definition.guardrails import guardrail_problems
from workflows.definition.model import MANUAL_INPUT_TYPES, STEP_ID_PATTERN  # noqa: F401 (forms)
from workflows.engine.approvals import MAX_TIMEOUT_HOURS, ON_TIMEOUT, approver_problem
from workflows.engine.conditions import UNARY_OPERATORS
from workflows.engine.delays import parse_timestamp
from workflows.engine.templating import TemplateError, is_single_reference, parse_path, references

STEP_ID = re.compile(STEP_ID_PATTERN)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
# A delay in seconds waits at most 366 days (a dunning flow's longest wait with room to spare);
# a later time is given with `until`. Bounded so the resume time is always a date.
MAX_DELAY_SECONDS = 366 * 24 * 3600
# InputField.object_type -> the billing model whose ids it takes.
OBJECT_MODELS = {
    "customer": "Customer",
    "subscription": "Subscription",
    "invoice": "Invoice",
    "payment_intent": "PaymentIntent",
    "charge": "Charge",
    "refund": "Refund",
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
            self.error("", "", f"A workflow definition is a JSON object, not {type_name(d)}")
            return
        if _nesting_exceeds(d, MAX_DEFINITION_DEPTH):
            self.error(
                "",
                "",
                f"The definition is nested more than {MAX_DEFINITION_DEPTH} levels deep "
                "(objects and lists inside each other)",
            )
            return
        # The typed model (workflows.definition.model) checks the shape; its errors are said
        # the way this module always said them.
        for step_id, field, message in shape_errors(d):
            self.error(step_id, field, message)
        # Uniqueness spans the whole tree, so it is checked here, on every step the walk can
        # reach even when some other part is misshapen.
        for place in walk.places(d):
            step_id = place.step.get("id")
            if not isinstance(step_id, str) or not STEP_ID.match(step_id):
                continue
            if step_id in self.all_step_ids:
                self.error(
                    step_id,
                    f"{place.field}.id",
                    f"Duplicate step id '{step_id}': step ids must be unique in the whole "
                    "workflow, nested steps included",
                )
            self.all_step_ids.add(step_id)
        # Money guardrails and the circuit breaker are refused even in a draft: the engine
        # reads them as they are stored.
        for field, message in guardrail_problems(d):
            self.error("", field, message)

    # --- meaning ------------------------------------------------------------------------

    def meaning(self) -> None:
        self.trigger = self.definition["trigger"]
        self.check_trigger()
        self.check_steps()
        limit = settings.BILLFLOW["MAX_STEPS_PER_WORKFLOW"]
        total = walk.count(self.definition)
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
            event = t["event"]  # a string: the model checked the shape, the scope included
            if not event:
                self.error("", "trigger.event", "An event trigger needs an event type")
            elif not event_types.is_known(event):
                self.error("", "trigger.event", f"Unknown event type '{event}'")
            if t.get("conditions") is not None:
                self.check_condition(
                    t["conditions"],
                    "",
                    "trigger.conditions",
                    _Scope(visible_steps=frozenset(), in_loop=False),
                    depth=0,
                )
            self.check_serialize(t)
        elif t["type"] == "manual":
            self.check_manual_input(t.get("input", []))
        else:
            cron = t["cron"]
            if not cron.strip():
                self.error("", "trigger.cron", "A schedule trigger needs a cron expression")
            elif len(cron.split()) != 5 or not croniter.is_valid(cron):
                self.error(
                    "",
                    "trigger.cron",
                    f"'{cron}' is not a valid cron expression (five fields: minute hour "
                    "day-of-month month day-of-week, like '0 9 * * 1')",
                )

    def check_serialize(self, t: dict) -> None:
        wait = t.get("serialize_max_wait_minutes")
        if wait is None:
            return
        if isinstance(wait, bool) or wait <= 0:
            self.error(
                "",
                "trigger.serialize_max_wait_minutes",
                "serialize_max_wait_minutes must be a positive number of minutes",
            )
        elif t.get("serialize_by") is None:
            self.error(
                "",
                "trigger.serialize_max_wait_minutes",
                "serialize_max_wait_minutes needs serialize_by (customer or object)",
            )

    def check_manual_input(self, declared: list[dict]) -> None:
        # The model checked each field's keys and types; names must also differ.
        names: set[str] = set()
        for index, item in enumerate(declared):
            name = item["name"]
            if name in names:
                self.error("", f"trigger.input[{index}].name", f"Duplicate input name '{name}'")
            names.add(name)

    # --- steps --------------------------------------------------------------------------

    def check_steps(self) -> None:
        # A step sees the steps before it in its own list and what its enclosing step sees:
        # never steps inside an earlier branch or loop, a sibling path, or later steps.
        scopes: dict[int, _Scope] = {}  # id() of a branch or loop -> the scope inside it
        seen: dict[int, set[str]] = {}  # id() of a list of steps -> ids walked in it so far
        outer = _Scope(visible_steps=frozenset(), in_loop=False)
        for place in walk.places(self.definition):
            step, field = place.step, place.field
            around = scopes[id(place.parent)] if place.parent is not None else outer
            before = seen.setdefault(id(place.container), set())
            here = _Scope(around.visible_steps | before, in_loop=around.in_loop)
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
                scopes[id(step)] = here
            elif kind == "foreach":
                self.check_foreach(step, field, here)
                scopes[id(step)] = _Scope(here.visible_steps, in_loop=True)
            elif kind == "delay":
                self.check_delay(step, field, here)
            elif kind == "approval":
                self.check_approval(step, field, here)
            before.add(step["id"])

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
                f"'{input_field.name}' must be {_a(kind)}, not {type_name(value)}",
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
            if isinstance(item, dict | list):
                # Stripe's metadata is text: a number, boolean or null is written as its text
                # (null removes the key) when the step runs; a structure has no text form.
                self.error(
                    step_id,
                    f"{field}.{key}",
                    f"Metadata values are text, numbers or booleans; '{key}' is "
                    f"{_a(type_name(item))}",
                )
            elif isinstance(item, str) and len(item) > 500 and not references(item):
                self.error(
                    step_id, f"{field}.{key}", f"Metadata value of '{key}' is over 500 characters"
                )

    def check_branch(self, step: dict, field: str, scope: _Scope) -> None:
        else_paths: list[int] = []
        names: set[str] = set()
        paths = step["paths"]
        for index, path in enumerate(paths):
            p_field = f"{field}.paths[{index}]"
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

    def check_delay(self, step: dict, field: str, scope: _Scope) -> None:
        """Exactly one of `seconds` (a positive whole number) and `until` (an ISO timestamp
        or a {{ reference }} to one)."""
        step_id = step["id"]
        has_seconds, has_until = "seconds" in step, "until" in step
        if has_seconds == has_until:
            self.error(
                step_id,
                field,
                "A delay step waits either 'seconds' (a positive whole number) or 'until' "
                "(an ISO timestamp or a {{ reference }} to one), exactly one of them",
            )
        elif has_seconds:
            value = step["seconds"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self.error(step_id, f"{field}.seconds", "Must be a positive whole number")
            elif value > MAX_DELAY_SECONDS:
                self.error(
                    step_id,
                    f"{field}.seconds",
                    f"Must be at most {MAX_DELAY_SECONDS:,} (366 days); wait longer with `until`",
                )
        else:
            until = step["until"]
            if isinstance(until, str) and "{{" in until:
                self.check_references(until, step_id, f"{field}.until", scope)
            elif not isinstance(until, str) or parse_timestamp(until) is None:
                self.error(
                    step_id,
                    f"{field}.until",
                    "Must be an ISO timestamp with a time zone (2026-12-24T09:00:00Z) or a "
                    "{{ reference }} to one",
                )

    def check_approval(self, step: dict, field: str, scope: _Scope) -> None:
        """Approvers (existing people or roles who can decide), a timeout in hours (more than
        0, at most 720) and what it decides; the message's references resolve."""
        step_id = step["id"]
        approvers = step.get("approvers") or []
        if not approvers:
            self.error(
                step_id,
                f"{field}.approvers",
                "An approval step needs at least one approver (a user name or a role)",
            )
        for index, name in enumerate(approvers):
            problem = approver_problem(name)
            if problem:
                self.error(step_id, f"{field}.approvers[{index}]", problem)
        hours = step.get("timeout_hours")
        if hours is None:
            self.error(step_id, f"{field}.timeout_hours", "An approval step needs timeout_hours")
        elif isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            self.error(step_id, f"{field}.timeout_hours", "Must be a positive number of hours")
        elif hours > MAX_TIMEOUT_HOURS:
            self.error(
                step_id,
                f"{field}.timeout_hours",
                f"Must be at most {MAX_TIMEOUT_HOURS} (30 days)",
            )
        if step.get("on_timeout") not in ON_TIMEOUT:
            self.error(
                step_id,
                f"{field}.on_timeout",
                "Must be 'reject' or 'approve': what a timeout decides",
            )
        if step.get("message"):
            self.check_references(step["message"], step_id, f"{field}.message", scope)

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

    # --- conditions ---------------------------------------------------------------------

    def check_condition(
        self, node: Any, step_id: str, where: str, scope: _Scope, *, depth: int
    ) -> None:
        if depth > MAX_CONDITION_DEPTH:
            self.error(
                step_id, where, f"Conditions may be nested at most {MAX_CONDITION_DEPTH} deep"
            )
            return
        # The model checked the tree's shape (groups of one key holding a list, leaves with
        # a field and a known operator); what is left is what the tree means.
        group = "all" if "all" in node else "any" if "any" in node else ""
        if group:
            for index, child in enumerate(node[group]):
                self.check_condition(
                    child, step_id, f"{where}.{group}[{index}]", scope, depth=depth + 1
                )
            return
        field = node["field"]
        if not field:
            self.error(step_id, f"{where}.field", "A condition needs a field")
        else:
            self.check_path(field, step_id, f"{where}.field", scope)
        op = node["op"]
        before = len(self.errors)
        self.check_condition_value(node, op, step_id, where, scope)
        if len(self.errors) == before:
            self.check_value_type(node, op, step_id, where)
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
                self.error(step_id, field, f"'{op}' needs a list value, not {type_name(value)}")
            else:
                for item in value:
                    if isinstance(item, str) and references(item):
                        self.check_references(item, step_id, field, scope)
        elif op in {"gt", "gte", "lt", "lte"}:
            if type_name(value) not in {"integer", "number", "string"}:
                self.error(
                    step_id,
                    field,
                    f"'{op}' compares numbers or strings, not {type_name(value)}",
                )
        elif op == "starts_with":
            if not isinstance(value, str):
                self.error(step_id, field, f"'starts_with' needs a string, not {type_name(value)}")
        elif op in {"contains", "not_contains"}:
            if isinstance(value, (list, dict)) or value is None:
                self.error(
                    step_id,
                    field,
                    f"'{op}' needs a string, number or boolean, not {type_name(value)}",
                )

    def check_value_type(self, node: dict, op: str, step_id: str, where: str) -> None:
        """A literal value must fit its field's type in the event catalogue (issue 15: an
        amount of "abc" or 1000.5 saved silently and never matched); the builder runs the
        same check (event_types.condition_value_problem) on each row."""
        field = node.get("field")
        if op in UNARY_OPERATORS or not isinstance(field, str) or not field:
            return
        ftype = None
        if self.trigger.get("type") == "event":
            ftype = event_types.field_type(str(self.trigger.get("event", "")), field)
        name = field.rsplit(".", 1)[-1]
        problem = event_types.condition_value_problem(name, ftype, op, node.get("value"))
        if problem:
            self.error(step_id, f"{where}.value", problem)

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


# What a value of each declared input type must be (the types of MANUAL_INPUT_TYPES).
_INPUT_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def validate_manual_input(declared: list[dict], data: Any) -> list[ValidationError]:
    """Every problem with a manual run's input against the trigger's declared input fields,
    each naming its field (`input.<name>`); an empty list means the run may start.

    The one checker of manual input: the API and `run_start_manual` raise its first error, the
    builder's run and test forms put each error under its field. The rules (docs/workflows.md,
    Manual inputs): the input is an object; every key is a declared field; a required field is
    present, not null and not an empty string; a value has the declared type (an integer is
    not a boolean, a number not a string); a field with choices takes one of them.
    """
    if not isinstance(data, dict):
        return [ValidationError("", "input", "Input must be a JSON object")]
    errors: list[ValidationError] = []
    names = {item["name"] for item in declared}
    for key in data:
        if key not in names:
            errors.append(
                ValidationError(
                    "", f"input.{key}", f"Input field '{key}' is not declared by this workflow"
                )
            )
    for item in declared:
        name, kind = item["name"], item.get("type", "string")
        value = data.get(name)
        if value is None or (value == "" and item.get("required")):
            # Null is "not given"; so is "" where a value is required (a form's empty box).
            if item.get("required"):
                errors.append(
                    ValidationError("", f"input.{name}", f"Input field '{name}' is required")
                )
            continue
        if not _INPUT_TYPE_CHECKS.get(kind, lambda v: True)(value):
            errors.append(
                ValidationError(
                    "",
                    f"input.{name}",
                    f"Input field '{name}' must be {_a(kind)}, not {type_name(value)}",
                )
            )
        elif item.get("choices") and value not in item["choices"]:
            errors.append(
                ValidationError(
                    "",
                    f"input.{name}",
                    f"Input field '{name}' must be one of {_quoted(item['choices'])}; "
                    f"got {json.dumps(value, default=str)}",
                )
            )
    return errors
