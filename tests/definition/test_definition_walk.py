"""The one walk over a definition's steps (`workflows.definition.walk`)."""

from __future__ import annotations

import copy

import pytest

from tests.definition.test_workflow_definitions import DESIGN_EXAMPLE, EVERY_FEATURE
from workflows.definition import walk
from workflows.definition.model import Definition
from workflows.definition.validation import validate_shape


def _action(step_id: str) -> dict:
    return {"id": step_id, "type": "action", "action": "customers.retrieve", "params": {}}


def nested() -> dict:
    """a: branch [path 0: b, c: loop [d]; path 1: e], f"""
    return {
        "name": "W",
        "trigger": {"type": "manual", "input": []},
        "steps": [
            {
                "id": "a",
                "type": "branch",
                "paths": [
                    {
                        "name": "one",
                        "when": {"all": []},
                        "steps": [
                            _action("b"),
                            {
                                "id": "c",
                                "type": "foreach",
                                "items": "{{ x }}",
                                "steps": [_action("d")],
                            },
                        ],
                    },
                    {"name": "two", "when": None, "steps": [_action("e")]},
                ],
            },
            _action("f"),
        ],
    }


def test_it_walks_depth_first_in_the_order_steps_run_with_parents_and_field_paths():
    seen = [
        (p.step["id"], p.field, p.parent and p.parent["id"], p.path_index, p.depth)
        for p in walk.places(nested())
    ]

    assert seen == [
        ("a", "steps[0]", None, None, 0),
        ("b", "steps[0].paths[0].steps[0]", "a", 0, 1),
        ("c", "steps[0].paths[0].steps[1]", "a", 0, 1),
        ("d", "steps[0].paths[0].steps[1].steps[0]", "c", None, 2),
        ("e", "steps[0].paths[1].steps[0]", "a", 1, 1),
        ("f", "steps[1]", None, None, 0),
    ]


def test_it_counts_every_step_nested_ones_too():
    assert walk.count(nested()) == 6
    assert walk.count(DESIGN_EXAMPLE) == 3
    assert walk.count(EVERY_FEATURE) == 7
    assert walk.count(nested()["steps"][0]["paths"][0]["steps"]) == 3  # a list of steps


def test_it_finds_a_step_its_parent_and_its_field_path():
    definition = nested()

    assert (
        walk.find(definition, "d").step
        is definition["steps"][0]["paths"][0]["steps"][1]["steps"][0]
    )
    assert walk.parent_of(definition, "d")["id"] == "c"
    assert walk.parent_of(definition, "f") is None
    assert walk.field_path(definition, "e") == "steps[0].paths[1].steps[0]"
    assert walk.find(definition, "ghost") is None
    assert [a["id"] for a in walk.find(definition, "d").ancestors] == ["a", "c"]


def test_it_gives_the_places_around_a_step_outermost_first():
    definition = nested()

    chain = walk.lineage(definition, "d")

    assert [(p.step["id"], p.index) for p in chain] == [("a", 0), ("c", 1), ("d", 0)]
    # Each place's list: what comes before it there ran before the step ("b" before "c").
    assert [s["id"] for s in chain[1].container[: chain[1].index]] == ["b"]
    # Steps of an earlier path, or inside an earlier loop, are not around it.
    assert [p.step["id"] for p in walk.lineage(definition, "e")] == ["a", "e"]
    assert [p.step["id"] for p in walk.lineage(definition, "f")] == ["f"]
    assert walk.lineage(definition, "ghost") == ()


def test_it_inserts_into_the_top_level_a_loop_body_and_a_branch_path():
    definition = nested()

    walk.insert(definition, _action("g"), index=0)
    walk.insert(definition, _action("h"), parent="c")
    walk.insert(definition, _action("i"), parent="a", path=1, index=0)

    assert walk.step_ids(definition) == ["g", "a", "b", "c", "d", "h", "i", "e", "f"]
    assert walk.field_path(definition, "i") == "steps[1].paths[1].steps[0]"
    assert validate_shape(definition) == []


def test_it_refuses_to_insert_where_no_steps_can_go():
    definition = nested()

    with pytest.raises(walk.WalkError, match="holds no steps"):
        walk.insert(definition, _action("g"), parent="b")
    with pytest.raises(walk.WalkError, match="has no path 5"):
        walk.insert(definition, _action("g"), parent="a", path=5)
    with pytest.raises(walk.WalkError, match="no step 'ghost'"):
        walk.insert(definition, _action("g"), parent="ghost")
    assert definition == nested()


def test_it_removes_a_step_with_what_is_inside_it():
    definition = nested()

    removed = walk.remove(definition, "c")

    assert removed["id"] == "c"
    assert walk.step_ids(definition) == ["a", "b", "e", "f"]


def test_it_moves_a_step_with_its_body():
    definition = nested()

    walk.move(definition, "c", index=0)

    assert walk.step_ids(definition) == ["c", "d", "a", "b", "e", "f"]
    assert walk.parent_of(definition, "d")["id"] == "c"


def test_a_step_cannot_move_inside_itself_and_a_refused_move_changes_nothing():
    definition = nested()
    before = copy.deepcopy(definition)

    with pytest.raises(walk.WalkError, match="inside itself"):
        walk.move(definition, "a", parent="c")
    with pytest.raises(walk.WalkError, match="has no path 9"):
        walk.move(definition, "b", parent="a", path=9)

    assert definition == before


def test_it_skips_what_is_not_well_shaped_instead_of_failing():
    definition = {
        "steps": [
            5,
            {"id": "a", "type": "branch", "paths": [7, {"steps": "no"}, {"steps": [_action("b")]}]},
            {"id": "c", "type": "foreach", "steps": None},
        ]
    }

    assert [(p.step["id"], p.field) for p in walk.places(definition)] == [
        ("a", "steps[1]"),
        ("b", "steps[1].paths[2].steps[0]"),
        ("c", "steps[2]"),
    ]
    assert walk.count({"steps": "nope"}) == 0
    assert walk.count(None) == 0


def test_it_walks_nesting_deeper_than_python_s_stack_without_recursing():
    step: dict = _action("leaf")
    for depth in range(1_500):  # deeper than the default recursion limit
        step = {"id": f"l{depth}", "type": "foreach", "items": "{{ x }}", "steps": [step]}

    assert walk.count({"steps": [step]}) == 1_501


def test_it_reads_the_typed_model_the_same_way():
    definition = nested()
    typed = Definition.model_validate(definition)

    assert walk.step_ids(typed) == walk.step_ids(definition)
    assert [p.field for p in walk.places(typed)] == [p.field for p in walk.places(definition)]
    assert walk.parent_of(typed, "d").id == "c"
    assert walk.count(typed) == 6
