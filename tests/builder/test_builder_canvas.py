"""The canvas model: plain words, evaluation order, loops, a run's path."""

from __future__ import annotations

from tests import factories
from workflows.builder.canvas import canvas_nodes, canvas_trigger, find_node


def _loop_definition() -> dict:
    definition = factories.region_workflow_definition()
    definition["steps"].append(
        {
            "id": "each_sub",
            "type": "foreach",
            "action": "subscriptions.list",
            "params": {"customer": "{{ trigger.data.object.id }}"},
            "max_items": 50,
            "steps": [
                {
                    "id": "tag_sub",
                    "type": "action",
                    "action": "subscriptions.update",
                    "params": {"subscription": "{{ item.id }}", "metadata": {"Seen": "yes"}},
                }
            ],
        }
    )
    return definition


def test_it_describes_steps_in_plain_words():
    nodes = canvas_nodes(factories.region_workflow_definition())
    tag_eu = find_node(nodes, "tag_eu")
    assert tag_eu.summary == "Update a customer — metadata Location = Europe"
    assert tag_eu.side_effects is True
    assert nodes[0].paths[0].summary == "When address.country is one of US, CA"


def test_it_draws_paths_in_evaluation_order_with_the_else_path_last():
    definition = factories.region_workflow_definition()
    paths = definition["steps"][0]["paths"]
    paths.insert(0, paths.pop())  # an else path stored first
    names = [p.name for p in canvas_nodes(definition)[0].paths]
    assert names == ["North America", "Europe", "Everyone else"]
    assert canvas_nodes(definition)[0].paths[-1].is_else


def test_it_keeps_each_paths_steps_with_their_path_when_the_else_path_is_stored_first():
    definition = factories.region_workflow_definition()
    paths = definition["steps"][0]["paths"]
    paths.insert(0, paths.pop())

    nodes = canvas_nodes(definition)

    drawn = [(p.name, [n.id for n in p.nodes]) for p in nodes[0].paths]
    assert drawn == [
        ("North America", ["tag_na"]),
        ("Europe", ["tag_eu"]),
        ("Everyone else", ["tag_global"]),
    ]
    # A card's address is where its step is stored: a `+` beside it inserts there.
    assert find_node(nodes, "tag_global").path_index == 0


def test_it_nests_a_loop_inside_a_branch_path_with_its_body():
    definition = _loop_definition()
    loop = definition["steps"].pop()
    definition["steps"][0]["paths"][1]["steps"].append(loop)

    nodes = canvas_nodes(definition)

    assert [n.id for n in nodes] == ["region"]
    europe = nodes[0].paths[1]
    assert [n.id for n in europe.nodes] == ["tag_eu", "each_sub"]
    assert [c.id for c in europe.nodes[1].children] == ["tag_sub"]
    tag_sub = find_node(nodes, "tag_sub")
    assert (tag_sub.parent, tag_sub.path_index, tag_sub.position) == ("each_sub", None, 0)
    each = find_node(nodes, "each_sub")
    assert (each.parent, each.path_index, each.position) == ("region", 1, 1)


def test_it_puts_a_loops_body_inside_the_loop():
    nodes = canvas_nodes(_loop_definition())
    loop = nodes[1]
    assert loop.type == "foreach"
    assert [c.id for c in loop.children] == ["tag_sub"]
    assert loop.children[0].parent == "each_sub"
    assert loop.summary == "For each item of List subscriptions (at most 50)"


def test_it_gives_each_node_its_insertion_address():
    nodes = canvas_nodes(factories.region_workflow_definition())
    tag_eu = find_node(nodes, "tag_eu")
    assert (tag_eu.parent, tag_eu.path_index, tag_eu.position) == ("region", 1, 0)


def test_it_marks_the_path_a_run_took():
    step_runs = {
        "region": {"status": "succeeded", "attempts": 1, "branch_chosen": "Europe"},
        "tag_eu": {"status": "failed", "attempts": 3, "error": {"message": "boom"}},
    }
    nodes = canvas_nodes(factories.region_workflow_definition(), step_runs=step_runs)
    branch = nodes[0]
    assert [p.taken for p in branch.paths] == [False, True, False]
    assert [p.skipped for p in branch.paths] == [True, False, True]
    tag_eu = find_node(nodes, "tag_eu")
    assert (tag_eu.status, tag_eu.attempts, tag_eu.taken) == ("failed", 3, True)
    assert find_node(nodes, "tag_na").skipped


def test_it_describes_the_trigger():
    card = canvas_trigger(factories.region_workflow_definition())
    assert card.title == "When Customer created"
    assert card.event == "customer.created"
    manual = canvas_trigger(
        {"trigger": {"type": "manual", "input": [{"name": "customer", "required": True}]}}
    )
    assert manual.summary == "Started by hand with customer (string, required)"
