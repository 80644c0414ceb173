"""Dynamic fields: `{{ path }}` references resolved against a run context."""

from __future__ import annotations

import pytest

from workflows.engine.templating import TemplateError, is_single_reference, references, resolve

CONTEXT = {
    "trigger": {
        "data": {
            "object": {
                "id": "cus_1",
                "amount": 1200,
                "address": None,
                "metadata": {"tier": "gold"},
                "paid": True,
            }
        }
    },
    "steps": {
        "get_customer": {
            "output": {"items": [{"id": "sub_1"}, {"id": "sub_2"}], "email": "a@example.com"}
        }
    },
    "item": {"id": "sub_9", "status": "active"},
    "run": {"id": 7, "workflow": 3},
}


def test_it_keeps_the_type_of_a_value_that_is_one_reference():
    assert resolve("{{ trigger.data.object.amount }}", CONTEXT) == 1200
    assert resolve("{{trigger.data.object.paid}}", CONTEXT) is True
    assert resolve("{{ trigger.data.object.metadata }}", CONTEXT) == {"tier": "gold"}


def test_it_interpolates_text_with_references():
    text = "Customer {{ trigger.data.object.id }} owes {{ trigger.data.object.amount }}"
    assert resolve(text, CONTEXT) == "Customer cus_1 owes 1200"


def test_it_renders_null_as_empty_and_structures_as_json_inside_text():
    assert resolve("[{{ trigger.data.object.address }}]", CONTEXT) == "[]"
    assert resolve("m={{ trigger.data.object.metadata }}", CONTEXT) == 'm={"tier": "gold"}'
    assert resolve("paid={{ trigger.data.object.paid }}", CONTEXT) == "paid=true"


def test_it_resolves_list_indexes():
    assert resolve("{{ steps.get_customer.output.items.1.id }}", CONTEXT) == "sub_2"


def test_it_resolves_recursively_through_dicts_and_lists():
    value = {"customer": "{{ item.id }}", "tags": ["{{ run.id }}", "x"], "n": 3}
    assert resolve(value, CONTEXT) == {"customer": "sub_9", "tags": [7, "x"], "n": 3}


def test_it_resolves_a_path_through_null_to_none():
    assert resolve("{{ trigger.data.object.address.country }}", CONTEXT) is None


def test_it_rejects_an_unknown_path_naming_it():
    with pytest.raises(TemplateError) as exc:
        resolve("{{ trigger.data.object.nope }}", CONTEXT)
    assert exc.value.path == "trigger.data.object.nope"
    assert "Unknown field 'nope' in trigger.data.object" in exc.value.message


def test_it_rejects_an_index_out_of_range():
    with pytest.raises(TemplateError) as exc:
        resolve("{{ steps.get_customer.output.items.5.id }}", CONTEXT)
    assert "has 2 item(s); index 5 is out of range" in exc.value.message


def test_it_rejects_a_name_used_on_a_list():
    with pytest.raises(TemplateError) as exc:
        resolve("{{ steps.get_customer.output.items.first }}", CONTEXT)
    assert "is a list: use an integer index" in exc.value.message


def test_it_never_reads_attributes_or_methods():
    context = {"trigger": {"text": "abc"}, "obj": object()}
    with pytest.raises(TemplateError) as exc:
        resolve("{{ trigger.text.upper }}", context)
    assert "is a str, it has no field 'upper'" in exc.value.message
    with pytest.raises(TemplateError):
        resolve("{{ obj.__class__ }}", context)


def test_it_rejects_expressions_that_are_not_paths():
    with pytest.raises(TemplateError) as exc:
        resolve("{{ trigger.data.object.amount * 2 }}", CONTEXT)
    assert "is not a valid reference" in exc.value.message
    with pytest.raises(TemplateError):
        resolve("{{ __import__('os') }}", CONTEXT)


def test_it_leaves_values_without_references_alone():
    assert resolve("plain", CONTEXT) == "plain"
    assert resolve(5, CONTEXT) == 5
    assert resolve(None, CONTEXT) is None


def test_it_lists_the_references_in_a_value():
    value = {"a": "{{ item.id }} and {{ run.id }}", "b": ["{{item.id}}", "x"]}
    assert references(value) == ["item.id", "run.id"]


def test_it_tells_a_single_reference_from_text():
    assert is_single_reference("{{ item.id }}")
    assert not is_single_reference(" {{ item.id }}")
    assert not is_single_reference("{{ item.id }}{{ run.id }}")
    assert not is_single_reference(5)
