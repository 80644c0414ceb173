"""The trigger panel's "Run one at a time per" setting (`trigger.serialize_by`) and its max
wait: saved into the definition, shown on the trigger card, refused with the field named."""

from __future__ import annotations

from workflows.builder.canvas import canvas_trigger
from workflows.models import Workflow
from workflows.services import workflow_definition

TRIGGER = {
    "workflow_name": "Region tags",
    "type": "event",
    "event": "customer.updated",
    "accounts": "platform",
    "trig-match": "all",
    "trig-groups": "0",
}


def _definition(workflow) -> dict:
    return workflow_definition(Workflow.objects.get(pk=workflow.pk))


def test_it_saves_one_at_a_time_per_customer_and_the_card_says_so(client, mona, region_draft):
    client.force_login(mona)
    url = f"/admin/workflows/{region_draft.pk}/trigger/"
    client.post(url, {**TRIGGER, "serialize_by": "customer", "serialize_max_wait_minutes": "30"})
    trigger = _definition(region_draft)["trigger"]
    assert trigger["serialize_by"] == "customer"
    assert trigger["serialize_max_wait_minutes"] == 30
    card = canvas_trigger(_definition(region_draft))
    assert card.serialized == (
        "One run at a time per customer, in event order; a failed run holds it 30 min at most"
    )
    panel = client.get(url).content.decode()
    assert "Run one at a time per" in panel
    assert 'value="30"' in panel
    page = client.get(f"/admin/workflows/{region_draft.pk}/").content.decode()
    assert "One run at a time per customer, in event order" in page

    client.post(url, {**TRIGGER, "serialize_by": ""})  # back to no limit
    assert "serialize_by" not in _definition(region_draft)["trigger"]


def test_a_bad_max_wait_is_shown_on_its_field(client, mona, region_draft):
    client.force_login(mona)
    url = f"/admin/workflows/{region_draft.pk}/trigger/"
    body = client.post(
        url, {**TRIGGER, "serialize_by": "customer", "serialize_max_wait_minutes": "soon"}
    ).content.decode()
    assert "Enter a number of minutes, like 60 or 0.5." in body
    body = client.post(
        url, {**TRIGGER, "serialize_by": "customer", "serialize_max_wait_minutes": "0"}
    ).content.decode()
    assert "serialize_max_wait_minutes must be a positive number of minutes" in body
