"""Condition trees, evaluated without `eval`.

A tree is a group `{"all": [...]}` / `{"any": [...]}` (nestable) or a leaf
`{"field": "trigger.data.object.amount", "op": "gt", "value": 10000}`.

Semantics an operator can rely on:

* `None` (no condition) is true; `{"all": []}` is true and `{"any": []}` is false.
* Values are typed: `eq` compares 100 and "100" as different; numbers compare with numbers
  (`1` equals `1.0`; booleans are not numbers), strings with strings.
* A field that does not exist (or whose path crosses a null) is *missing*: `exists` is false,
  `not_exists` is true, and every comparison (`eq`, `gt`, `in`, `contains`, `starts_with`, ...)
  is false, including the negative ones `ne`, `not_in`, `not_contains`: a missing field
  never satisfies a comparison. `exists` is also false for a field that is present but null.
* A `value` may itself hold `{{ path }}` references (compare with an earlier step's output);
  an unknown path there makes the comparison false.
* `changed` is true when the field, taken relative to `trigger.data.object`, is a key of
  `trigger.data.previous_attributes` (nested hashes such as metadata or address hold only
  their changed keys there, as Stripe does). Only `*.updated` events carry previous attributes.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from workflows.engine.templating import TemplateError, parse_path, resolve

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "exists",
    "not_exists",
    "changed",
)
# Operators that take no `value`.
UNARY_OPERATORS = frozenset({"exists", "not_exists", "changed"})
OBJECT_PREFIX = "trigger.data.object."


class OperatorWords(NamedTuple):
    holds: str  # what the operator says: "amount is greater than 100"
    fails: str  # what a false leaf says: "amount 150 is not greater than 1000"


# The one vocabulary for the operators: the builder's condition editor lists `holds`, the
# canvas card reads "<field> <holds> <value>", and `explain` says "<field> <actual> <fails>
# <expected>". Each phrase reads between a field and a value, so the three agree word for word.
OPERATOR_WORDS: dict[str, OperatorWords] = {
    "eq": OperatorWords("is equal to", "is not equal to"),
    "ne": OperatorWords("is not equal to", "is equal to"),
    "gt": OperatorWords("is greater than", "is not greater than"),
    "gte": OperatorWords("is at least", "is not at least"),
    "lt": OperatorWords("is less than", "is not less than"),
    "lte": OperatorWords("is at most", "is not at most"),
    "in": OperatorWords("is one of", "is not one of"),
    "not_in": OperatorWords("is not one of", "is one of"),
    "contains": OperatorWords("contains", "does not contain"),
    "not_contains": OperatorWords("does not contain", "contains"),
    "starts_with": OperatorWords("starts with", "does not start with"),
    "exists": OperatorWords("is set", "is not set"),
    "not_exists": OperatorWords("is not set", "is set"),
    "changed": OperatorWords("changed", "did not change"),
}


def operator_words(op: Any) -> str:
    """What the operator says ("is greater than"); an unknown one is shown as written."""
    words = OPERATOR_WORDS.get(op) if isinstance(op, str) else None
    return words.holds if words else str(op)


_MISSING = object()


def _field_value(field: str, context: dict) -> Any:
    """The field's value, or _MISSING when it does not exist or its path crosses a null."""
    try:
        segments = parse_path(field)
    except TemplateError:
        return _MISSING
    current: Any = context
    for segment in segments:
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    return type(a) is type(b)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def _order(op: str, a: Any, b: Any) -> bool:
    comparable = (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))
    if not comparable:
        return False
    if op == "gt":
        return a > b
    if op == "gte":
        return a >= b
    if op == "lt":
        return a < b
    return a <= b


def _contains(container: Any, needle: Any) -> bool:
    if isinstance(container, str):
        return isinstance(needle, str) and needle in container
    if isinstance(container, list):
        return any(_equal(item, needle) for item in container)
    if isinstance(container, dict):
        # A metadata map "contains" a key.
        return isinstance(needle, str) and needle in container
    return False


def _changed(field: str, context: dict) -> bool:
    if not field.startswith(OBJECT_PREFIX):
        return False
    previous = _field_value("trigger.data.previous_attributes", context)
    if not isinstance(previous, dict):
        return False
    # Stripe's previous_attributes holds only the changed keys of nested hashes (a key that
    # is new appears with null), so walking it answers the question; reaching a non-hash
    # before the end means the whole parent was replaced (an address that was null).
    node: Any = previous
    for part in field[len(OBJECT_PREFIX) :].split("."):
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _leaf(condition: dict, context: dict) -> bool:
    field = condition.get("field", "")
    op = condition.get("op")
    expected = condition.get("value")
    if op == "changed":
        return _changed(field, context)
    if isinstance(expected, str | list) and "{{" in str(expected):
        try:
            expected = resolve(expected, context)
        except TemplateError:
            return False
    actual = _field_value(field, context)
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "not_exists":
        return actual is _MISSING or actual is None
    if actual is _MISSING:
        return False
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    if op in {"gt", "gte", "lt", "lte"}:
        return _order(op, actual, expected)
    if op in {"in", "not_in"}:
        if not isinstance(expected, list):
            return False
        found = any(_equal(actual, option) for option in expected)
        return found if op == "in" else not found
    if op == "contains":
        return _contains(actual, expected)
    if op == "not_contains":
        if not isinstance(actual, (str, list, dict)):
            return False
        return not _contains(actual, expected)
    if op == "starts_with":
        return isinstance(actual, str) and isinstance(expected, str) and actual.startswith(expected)
    raise ValueError(f"Unknown condition operator {op!r}")


# Stored trees are validated to MAX_CONDITION_DEPTH (5); anything deeper is not one of ours and
# is refused before the recursion could get anywhere near Python's limit.
MAX_EVALUATION_DEPTH = 32


def evaluate(condition: dict | None, context: dict, _depth: int = 0) -> bool:
    """True when `context` satisfies the condition tree (None: no condition, true).

    A malformed tree (not an object, a group without a list, a field that is not a string,
    an unknown operator, deeper than MAX_EVALUATION_DEPTH) raises ValueError naming the problem.
    """
    if condition is None:
        return True
    if not isinstance(condition, dict):
        raise ValueError(f"A condition is an object, not {type(condition).__name__}")
    if _depth > MAX_EVALUATION_DEPTH:
        raise ValueError(f"Conditions may be nested at most {MAX_EVALUATION_DEPTH} deep")
    for group, combine in (("all", all), ("any", any)):
        if group in condition:
            children = condition[group]
            if not isinstance(children, list):
                raise ValueError(f"'{group}' must hold a list of conditions")
            if any(child is None for child in children):
                raise ValueError(f"'{group}' holds a null where a condition belongs")
            return combine(evaluate(child, context, _depth + 1) for child in children)
    if not isinstance(condition.get("field", ""), str):
        raise ValueError("A condition's field is a dotted path string")
    return _leaf(condition, context)


def condition_fields(condition: dict | None) -> list[str]:
    """The fields a tree reads, in order, each once (for validation and the inspector)."""
    fields: list[str] = []

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                for child in node[key]:
                    walk(child)
                return
        field = node.get("field")
        if isinstance(field, str) and field and field not in fields:
            fields.append(field)

    walk(condition)
    return fields


def _shown(value: Any) -> str:
    """A value as the operator wrote it: numbers plain, strings quoted (JSON)."""
    try:
        return json.dumps(value, default=str)
    except ValueError:
        return repr(value)


def _field_name(field: str) -> str:
    # Trigger conditions read the event's object: "amount" reads better than its full path.
    return field[len(OBJECT_PREFIX) :] if field.startswith(OBJECT_PREFIX) else field


def _explain_leaf(condition: dict, context: dict) -> str:
    field = condition.get("field", "")
    name = _field_name(field)
    op = condition.get("op")
    if op == "changed":
        return f"{name} {OPERATOR_WORDS['changed'].fails} in this event"
    actual = _field_value(field, context)
    if op == "exists":
        return f"{name} is missing" if actual is _MISSING else f"{name} is null"
    if op == "not_exists":
        return f"{name} exists ({_shown(actual)})"
    if actual is _MISSING:
        return f"{name} is missing (a missing field satisfies no comparison)"
    expected = condition.get("value")
    if isinstance(expected, str | list) and "{{" in str(expected):
        try:
            expected = resolve(expected, context)
        except TemplateError as exc:
            return f"{name}: its value {_shown(condition.get('value'))} does not resolve ({exc})"
    words = OPERATOR_WORDS.get(op) if isinstance(op, str) else None
    fails = words.fails if words else str(op)
    sentence = f"{name} {_shown(actual)} {fails} {_shown(expected)}"
    if op in {"eq", "gt", "gte", "lt", "lte"} and not _same_kind(actual, expected):
        sentence += " (values of different kinds never compare)"
    return sentence


def explain(condition: dict | None, context: dict) -> str | None:
    """Why `context` does not satisfy the tree, as a sentence naming the field, the operator
    and both values ("amount 150000 is not greater than 999999999"); None when it does.

    In an `all` group the first false condition is the reason; in an `any` group every one
    was false, so each is named. Raises ValueError on a malformed tree, as `evaluate` does.
    """
    if evaluate(condition, context):
        return None
    assert condition is not None  # None is true
    if isinstance(condition.get("all"), list):
        for child in condition["all"]:
            reason = explain(child, context)
            if reason is not None:
                return reason
    if isinstance(condition.get("any"), list):
        reasons = [explain(child, context) for child in condition["any"]]
        reasons = [r for r in reasons if r]
        if not reasons:
            return "no condition of an 'any' group is set, so it is false"
        return reasons[0] if len(reasons) == 1 else "none holds: " + "; ".join(reasons)
    return _explain_leaf(condition, context)
