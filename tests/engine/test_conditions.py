"""Condition trees: every operator, typed values, missing fields, and `changed`."""

from __future__ import annotations

import pytest

from workflows.builder.canvas import condition_words
from workflows.builder.forms import ConditionEditor
from workflows.engine.conditions import (
    OPERATOR_WORDS,
    OPERATORS,
    UNARY_OPERATORS,
    condition_fields,
    evaluate,
    explain,
)


def context(obj: dict, previous: dict | None = None) -> dict:
    data: dict = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"trigger": {"data": data}, "steps": {"s": {"output": {"limit": 100}}}}


PI = context(
    {
        "amount": 15000,
        "currency": "usd",
        "email": "jenny@example.com",
        "tags": ["vip", "eu"],
        "metadata": {"tier": "gold"},
        "address": None,
        "count": 0,
    }
)


def leaf(field: str, op: str, *value) -> dict:
    node = {"field": f"trigger.data.object.{field}", "op": op}
    if value:
        node["value"] = value[0]
    return node


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (leaf("currency", "eq", "usd"), True),
        (leaf("currency", "eq", "eur"), False),
        (leaf("amount", "eq", 15000.0), True),
        (leaf("amount", "eq", "15000"), False),  # typed: a string is not a number
        (leaf("count", "eq", False), False),  # booleans are not numbers
        (leaf("currency", "ne", "eur"), True),
        (leaf("amount", "gt", 10000), True),
        (leaf("amount", "gt", 15000), False),
        (leaf("amount", "gte", 15000), True),
        (leaf("amount", "lt", 20000), True),
        (leaf("amount", "lte", 14999), False),
        (leaf("amount", "gt", "100"), False),  # a number never compares with a string
        (leaf("currency", "in", ["usd", "cad"]), True),
        (leaf("currency", "in", ["eur"]), False),
        (leaf("currency", "not_in", ["eur"]), True),
        (leaf("email", "contains", "@example"), True),
        (leaf("tags", "contains", "vip"), True),
        (leaf("tags", "not_contains", "us"), True),
        (leaf("metadata", "contains", "tier"), True),
        (leaf("email", "starts_with", "jenny"), True),
        (leaf("email", "starts_with", "bob"), False),
        (leaf("email", "exists"), True),
        (leaf("address", "exists"), False),  # present but null
        (leaf("address", "not_exists"), True),
        (leaf("phone", "not_exists"), True),
    ],
)
def test_it_applies_each_operator(node, expected):
    assert evaluate(node, PI) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "lt", "in", "not_in", "contains", "starts_with"])
def test_it_makes_every_comparison_on_a_missing_field_false(op):
    value = ["x"] if op in {"in", "not_in"} else "x"
    assert evaluate(leaf("nope", op, value), PI) is False
    assert evaluate(leaf("address.country", op, value), PI) is False


def test_it_treats_no_condition_as_true():
    assert evaluate(None, PI) is True


def test_it_combines_all_and_any_and_nests_them():
    tree = {
        "all": [
            leaf("amount", "gt", 10000),
            {"any": [leaf("currency", "eq", "eur"), leaf("tags", "contains", "vip")]},
        ]
    }
    assert evaluate(tree, PI) is True
    tree["all"].append(leaf("currency", "eq", "eur"))
    assert evaluate(tree, PI) is False


def test_it_makes_an_empty_all_true_and_an_empty_any_false():
    assert evaluate({"all": []}, PI) is True
    assert evaluate({"any": []}, PI) is False


def test_it_compares_with_a_referenced_value():
    assert evaluate(leaf("amount", "gt", "{{ steps.s.output.limit }}"), PI) is True
    assert evaluate(leaf("amount", "gt", "{{ steps.nope.output.limit }}"), PI) is False


def test_it_reads_changed_from_previous_attributes():
    updated = context(
        {
            "email": "new@example.com",
            "metadata": {"a": "1", "b": "2"},
            "address": {"country": "FR"},
        },
        {"email": "old@example.com", "metadata": {"b": None}, "address": None},
    )
    assert evaluate(leaf("email", "changed"), updated) is True
    assert evaluate(leaf("name", "changed"), updated) is False
    assert evaluate(leaf("metadata.b", "changed"), updated) is True
    assert evaluate(leaf("metadata.a", "changed"), updated) is False
    assert evaluate(leaf("address.country", "changed"), updated) is True


def test_it_makes_changed_false_without_previous_attributes():
    assert evaluate(leaf("email", "changed"), PI) is False


def test_it_lists_the_fields_a_tree_reads():
    tree = {"all": [leaf("amount", "gt", 1), {"any": [leaf("currency", "eq", "usd")]}]}
    tree["all"].append(leaf("amount", "lt", 5))
    assert condition_fields(tree) == [
        "trigger.data.object.amount",
        "trigger.data.object.currency",
    ]
    assert condition_fields(None) == []


def test_it_never_evaluates_text_as_code():
    node = {"field": "trigger.data.object.amount", "op": "eq", "value": "__import__('os')"}
    assert evaluate(node, PI) is False


@pytest.mark.parametrize("op", OPERATORS)
def test_it_names_each_operator_with_the_same_words_in_the_editor_the_canvas_and_the_explanation(
    op,
):
    words = OPERATOR_WORDS[op]
    assert dict(ConditionEditor.operators)[op] == words.holds
    tree = leaf("amount", op) if op in UNARY_OPERATORS else leaf("amount", op, 99)
    assert condition_words(tree) == f"amount {words.holds}" + (
        "" if op in UNARY_OPERATORS else " 99"
    )
    if op not in UNARY_OPERATORS:
        # A value that makes the comparison false for each operator: 15000 against 99 or 15000.
        for value in (99, 15000, [15000], "15000", "1"):
            reason = explain(leaf("amount", op, value), PI)
            if reason is not None:
                assert reason.startswith(f"amount 15000 {words.fails} ")
                break
        else:
            pytest.fail(f"no value makes {op} false")


def test_it_explains_a_false_gte_in_the_editors_words():
    assert explain(leaf("amount", "gte", 20000), PI) == "amount 15000 is not at least 20000"
    assert explain(leaf("amount", "eq", 1), PI) == "amount 15000 is not equal to 1"
    assert explain(leaf("email", "changed"), PI) == "email did not change in this event"
