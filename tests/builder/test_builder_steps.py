"""Editing steps in the builder: add, save (with the engine's errors next to the field), move,
duplicate, delete; branch paths and the condition editor; the trigger; the field picker."""

from __future__ import annotations

import pytest

from tests import factories
from workflows import services
from workflows.models import Workflow
from workflows.services import workflow_definition

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def empty(live, mona):
    return services.workflow_create(
        environment=live,
        definition={
            "name": "Empty",
            "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
            "steps": [],
        },
        created_by=mona,
        allow_invalid=True,
    )


def _definition(workflow) -> dict:
    return workflow_definition(Workflow.objects.get(pk=workflow.pk))


def test_it_adds_an_action_step_and_opens_its_form(client, mona, empty):
    client.force_login(mona)
    response = client.post(
        f"/admin/workflows/{empty.pk}/steps/add/",
        {"kind": "action", "action": "customers.update", "parent": "", "path": "", "position": 0},
        **HX,
    )
    body = response.content.decode()
    assert _definition(empty)["steps"] == [
        {"id": "update_customer", "type": "action", "action": "customers.update", "params": {}}
    ]
    assert 'name="p_customer"' in body  # the action's declared inputs
    assert 'class="wf-required"' in body
    assert 'hx-swap-oob="true"' in body  # the canvas comes along
    assert "&#x27;customer&#x27; is required for customers.update" in body


def test_it_adds_steps_inside_a_branch_path_and_a_loop(client, mona, region_draft):
    client.force_login(mona)
    url = f"/admin/workflows/{region_draft.pk}/steps/add/"
    client.post(url, {"kind": "condition", "parent": "region", "path": "1", "position": 0})
    client.post(url, {"kind": "foreach", "parent": "", "path": "", "position": 1})
    client.post(
        url, {"kind": "action", "action": "team.email", "parent": "loop", "path": "", "position": 0}
    )
    steps = _definition(region_draft)["steps"]
    europe = steps[0]["paths"][1]["steps"]
    assert [s["id"] for s in europe] == ["check", "tag_eu"]
    assert steps[1]["id"] == "loop"
    assert [s["id"] for s in steps[1]["steps"]] == ["email_team"]


def test_it_refuses_a_step_beyond_the_limit(client, mona, region_draft, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_STEPS_PER_WORKFLOW": 4}
    client.force_login(mona)
    response = client.post(
        f"/admin/workflows/{region_draft.pk}/steps/add/", {"kind": "condition", "position": 0}, **HX
    )
    assert "This workflow has 4 steps; the limit is 4" in response.content.decode()
    assert len(_definition(region_draft)["steps"]) == 1


def test_it_saves_a_step_and_redraws_its_card(client, mona, region_draft):
    client.force_login(mona)
    response = client.post(
        f"/admin/workflows/{region_draft.pk}/steps/tag_eu/",
        {
            "p_customer": "{{ trigger.data.object.id }}",
            "p_metadata": "Location = Europe\nTeam = EU",
        },
        **HX,
    )
    body = response.content.decode()
    step = _definition(region_draft)["steps"][0]["paths"][1]["steps"][0]
    assert step["params"] == {
        "customer": "{{ trigger.data.object.id }}",
        "metadata": {"Location": "Europe", "Team": "EU"},
    }
    assert "Update a customer — metadata Location = Europe, Team = EU" in body
    assert "Saved." in body


def test_it_shows_the_engines_error_next_to_the_field(client, mona, region_draft):
    client.force_login(mona)
    response = client.post(
        f"/admin/workflows/{region_draft.pk}/steps/tag_eu/",
        {"p_customer": "{{ trigger.data.object.nope }}", "p_metadata": "Location = Europe"},
        **HX,
    )
    body = response.content.decode()
    field = body[body.index('id="wf-field-p_customer"') :]
    field = field[: field.index('id="wf-field-p_email"')]
    assert "wf-field-error" in body[body.index('id="wf-field-p_customer"') - 40 :][:80]
    assert "nope" in field and "is not a field of customer" in field
    assert "Saved, with problems to fix" in body


def test_it_keeps_invalid_json_out_of_the_draft(client, mona, region_draft):
    client.force_login(mona)
    before = _definition(region_draft)
    response = client.post(
        f"/admin/workflows/{region_draft.pk}/steps/tag_eu/",
        {"p_customer": "{{ trigger.data.object.id }}", "p_address": "{not json"},
        **HX,
    )
    assert "This is not valid JSON" in response.content.decode()
    assert _definition(region_draft) == before


def test_it_moves_duplicates_and_deletes_steps(client, mona, region_draft):
    client.force_login(mona)
    base = f"/admin/workflows/{region_draft.pk}/steps"
    client.post(f"{base}/add/", {"kind": "condition", "position": 1})
    client.post(f"{base}/check/move/", {"direction": "up"})
    assert [s["id"] for s in _definition(region_draft)["steps"]] == ["check", "region"]
    client.post(f"{base}/tag_eu/duplicate/")
    europe = _definition(region_draft)["steps"][1]["paths"][1]["steps"]
    assert [s["id"] for s in europe] == ["tag_eu", "tag_eu_2"]
    assert europe[1]["params"] == europe[0]["params"]
    client.post(f"{base}/region/delete/")
    assert [s["id"] for s in _definition(region_draft)["steps"]] == ["check"]


def test_it_moves_a_step_within_its_branch_path_and_not_past_either_end(client, mona, region_draft):
    client.force_login(mona)
    base = f"/admin/workflows/{region_draft.pk}/steps"
    client.post(
        f"{base}/add/", {"kind": "condition", "parent": "region", "path": "1", "position": 1}
    )

    def paths() -> list[list[str]]:
        branch = _definition(region_draft)["steps"][0]
        return [[s["id"] for s in p["steps"]] for p in branch["paths"]]

    client.post(f"{base}/check/move/", {"direction": "up"})
    assert paths() == [["tag_na"], ["check", "tag_eu"], ["tag_global"]]
    client.post(f"{base}/check/move/", {"direction": "up"})  # first of its path: it stays
    assert paths() == [["tag_na"], ["check", "tag_eu"], ["tag_global"]]
    client.post(f"{base}/check/move/", {"direction": "down"})
    assert paths() == [["tag_na"], ["tag_eu", "check"], ["tag_global"]]


def test_it_duplicates_a_step_of_a_loop_body_right_after_it(client, mona, region_draft):
    client.force_login(mona)
    base = f"/admin/workflows/{region_draft.pk}/steps"
    client.post(f"{base}/add/", {"kind": "foreach", "position": 1})
    client.post(f"{base}/add/", {"kind": "condition", "parent": "loop", "position": 0})
    client.post(f"{base}/add/", {"kind": "condition", "parent": "loop", "position": 1})

    client.post(f"{base}/check/duplicate/")

    loop = _definition(region_draft)["steps"][1]
    assert [s["id"] for s in loop["steps"]] == ["check", "check_3", "check_2"]


def test_a_step_added_inside_a_branch_path_opens_its_panel_at_once(client, mona, region_draft):
    client.force_login(mona)
    response = client.post(
        f"/admin/workflows/{region_draft.pk}/steps/add/",
        {"kind": "condition", "parent": "region", "path": "2", "position": 0},
        **HX,
    )
    # The panel is drawn from the definition in memory, which got the step in the same place.
    assert response.status_code == 200
    assert f"/admin/workflows/{region_draft.pk}/steps/check/" in response.content.decode()
    everyone_else = _definition(region_draft)["steps"][0]["paths"][2]["steps"]
    assert [s["id"] for s in everyone_else] == ["check", "tag_global"]


def test_it_edits_a_condition_step_with_groups(client, mona, region_draft):
    client.force_login(mona)
    base = f"/admin/workflows/{region_draft.pk}/steps"
    client.post(f"{base}/add/", {"kind": "condition", "position": 0})
    data = {
        "cond-match": "all",
        "cond-groups": "2",
        "cond-g0-rows": "1",
        "cond-g0-r0-field": "trigger.data.object.email",
        "cond-g0-r0-op": "exists",
        "cond-g1-match": "any",
        "cond-g1-rows": "2",
        "cond-g1-r0-field": "trigger.data.object.balance",
        "cond-g1-r0-op": "gt",
        "cond-g1-r0-value": "1.00",  # balance is money: 1.00 USD is stored as 100
        "cond-g1-r1-field": "trigger.data.object.currency",
        "cond-g1-r1-op": "in",
        "cond-g1-r1-value": "eur, gbp",
    }
    client.post(f"{base}/check/", data)
    assert _definition(region_draft)["steps"][0]["condition"] == {
        "all": [
            {"field": "trigger.data.object.email", "op": "exists"},
            {
                "any": [
                    {"field": "trigger.data.object.balance", "op": "gt", "value": 100},
                    {"field": "trigger.data.object.currency", "op": "in", "value": ["eur", "gbp"]},
                ]
            },
        ]
    }
    # "+ Condition" redraws the editor with one more row and saves nothing.
    response = client.post(f"{base}/check/", {**data, "_editor": "cond:row0"}, **HX)
    assert 'name="cond-g0-r1-field"' in response.content.decode()


def test_it_edits_branch_paths(client, mona, region_draft):
    client.force_login(mona)
    form = client.get(f"/admin/workflows/{region_draft.pk}/steps/region/").content.decode()
    assert 'value="North America"' in form and 'name="path2-else" checked' in form
    data = {
        "paths": "3",
        "path0-name": "Americas",
        "path0-match": "any",
        "path0-groups": "1",
        "path0-g0-rows": "1",
        "path0-g0-r0-field": "trigger.data.object.address.country",
        "path0-g0-r0-op": "in",
        "path0-g0-r0-value": "US, CA, MX",
        "path1-remove": "on",
        "path2-name": "Everyone else",
        "path2-else": "on",
    }
    client.post(f"/admin/workflows/{region_draft.pk}/steps/region/", data)
    paths = _definition(region_draft)["steps"][0]["paths"]
    assert [p["name"] for p in paths] == ["Americas", "Everyone else"]
    assert paths[0]["when"]["any"][0]["value"] == ["US", "CA", "MX"]
    assert paths[0]["steps"][0]["id"] == "tag_na"  # steps stay with their path
    assert paths[1]["when"] is None and paths[1]["steps"][0]["id"] == "tag_global"


def test_it_saves_the_trigger_and_its_conditions(client, mona, region_draft):
    client.force_login(mona)
    client.post(
        f"/admin/workflows/{region_draft.pk}/trigger/",
        {
            "workflow_name": "Region tags",
            "type": "event",
            "event": "customer.updated",
            "accounts": "all",
            "trig-match": "all",
            "trig-groups": "1",
            "trig-g0-rows": "1",
            "trig-g0-r0-field": "trigger.data.object.address.country",
            "trig-g0-r0-op": "changed",
        },
    )
    definition = _definition(region_draft)
    assert definition["name"] == "Region tags"
    assert definition["trigger"] == {
        "type": "event",
        "event": "customer.updated",
        "accounts": "all",
        "conditions": {"all": [{"field": "trigger.data.object.address.country", "op": "changed"}]},
    }


def test_it_offers_the_fields_available_at_a_step(client, mona, region_draft):
    client.force_login(mona)
    client.post(
        f"/admin/workflows/{region_draft.pk}/steps/add/",
        {"kind": "action", "action": "customers.retrieve", "position": 0},
    )
    base = f"/admin/workflows/{region_draft.pk}/picker/"
    body = client.get(base, {"step": "tag_eu", "target": "id_p_customer"}, **HX).content.decode()
    assert "trigger.data.object.address.country" in body
    assert "steps.retrieve_customer.output.email" in body  # an earlier step's output
    assert "steps.tag_na" not in body  # another path: not run before tag_eu
    assert 'data-insert="{{ trigger.data.object.id }}"' in body
    found = client.get(base, {"step": "tag_eu", "q": "country", "list": "1"}, **HX)
    assert "address.country" in found.content.decode()
    assert "trigger.data.object.email" not in found.content.decode()


def test_it_offers_item_fields_inside_a_loop(client, mona, region_draft):
    client.force_login(mona)
    definition = factories.region_workflow_definition()
    definition["steps"].append(
        {
            "id": "each",
            "type": "foreach",
            "action": "subscriptions.list",
            "params": {},
            "steps": [{"id": "inner", "type": "condition", "condition": {"all": []}}],
        }
    )
    services.workflow_update(workflow=region_draft, definition=definition, allow_invalid=True)
    body = client.get(f"/admin/workflows/{region_draft.pk}/picker/", {"step": "inner"}, **HX)
    assert "item.status" in body.content.decode()
    assert "steps.region.output.path" in body.content.decode()


def test_a_new_step_inside_a_loop_is_offered_the_loops_item_and_what_ran_before_it(
    client, mona, region_draft
):
    client.force_login(mona)
    definition = factories.region_workflow_definition()
    definition["steps"].append(
        {"id": "each", "type": "foreach", "action": "subscriptions.list", "params": {}, "steps": []}
    )
    services.workflow_update(workflow=region_draft, definition=definition, allow_invalid=True)

    body = client.get(f"/admin/workflows/{region_draft.pk}/picker/", {"parent": "each"}, **HX)

    assert "item.status" in body.content.decode()
    assert "steps.region.output.path" in body.content.decode()
    # The loop's own output is not offered to its body (it is `item`, one at a time).
    assert "steps.each.output" not in body.content.decode()
