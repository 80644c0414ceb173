"""Issue 15 in headless Chromium at 1280×800: the picker's search, a three-path branch on a
narrow canvas, a money condition typed as money, and a wrong value refused inline.

Screenshots: docs/screenshots/builder-branch-1280.png, builder-typed-condition.png,
builder-picker-search.png.
"""

from __future__ import annotations

import copy

import pytest

from tests import factories
from workflows import services
from workflows.models import Workflow
from workflows.services import workflow_definition

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH, HEIGHT = 1280, 800

INVOICE_PAID = {
    "name": "Large invoices",
    "trigger": {"type": "event", "event": "invoice.paid", "accounts": "platform"},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {"customer": "{{ trigger.data.object.customer }}", "description": "big"},
        }
    ],
}


def _workflow(mona, definition: dict) -> Workflow:
    live = factories.environment("live")
    return services.workflow_create(
        environment=live, definition=copy.deepcopy(definition), created_by=mona
    )


def test_the_pickers_search_finds_a_field_and_inserts_it(new_page, mona, screenshot):
    from playwright.sync_api import expect

    workflow = _workflow(mona, INVOICE_PAID)
    page = new_page(mona, width=WIDTH, height=HEIGHT)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    page.click("#wf-node-tag .wf-title")
    page.wait_for_selector("#wf-step-form")
    page.click("#wf-field-p_description .wf-picker-open")
    slot = page.locator("#wf-slot-id_p_description")
    expect(slot.locator(".wf-picker")).to_have_count(1)
    expect(slot).to_contain_text("trigger.data.object.customer")

    slot.locator("input[name=q]").fill("number")

    # The list is filtered in place: one picker, one step form, no nested panel.
    expect(slot.locator(".wf-pick")).to_have_count(1)
    expect(slot).not_to_contain_text("trigger.data.object.customer")
    expect(page.locator("#wf-step-form")).to_have_count(1)
    expect(page.locator(".wf-picker")).to_have_count(1)
    slot.locator('.wf-pick[data-insert="{{ trigger.data.object.number }}"]').click()
    expect(page.locator("#id_p_description")).to_have_value("big{{ trigger.data.object.number }}")

    # An amount is offered with its formatter: "| money" inserts it formatted for people.
    page.click("#wf-field-p_description .wf-picker-open")
    expect(slot.locator(".wf-picker")).to_have_count(1)
    # The picker opened anew (its search box is empty again) before typing into it: typing
    # into the previous one while the new one is on its way would be lost when it arrives.
    expect(slot.locator("input[name=q]")).to_have_value("")
    slot.locator("input[name=q]").fill("amount_paid")
    expect(slot.locator(".wf-pick-format")).to_have_count(1)
    expect(slot.locator(".wf-pick-format")).to_have_text("| money")
    screenshot(page, "builder-picker-search", full_page=False)
    slot.locator(".wf-pick-format").click()
    expect(page.locator("#id_p_description")).to_have_value(
        "big{{ trigger.data.object.number }}{{ trigger.data.object.amount_paid | money }}"
    )


@pytest.mark.parametrize("width", [1024, WIDTH, 1400])
def test_every_path_of_a_three_path_branch_is_visible_or_reachable(
    new_page, mona, screenshot, width
):
    from playwright.sync_api import expect

    workflow = _workflow(mona, factories.region_workflow_definition())
    page = new_page(mona, width=width, height=HEIGHT)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    paths = page.locator("#wf-node-region > .wf-paths > .wf-path")
    expect(paths).to_have_count(3)
    container = page.locator("#wf-node-region > .wf-paths")
    # Scrolled to its start, the first path begins inside the canvas (not cut off on the left).
    container.evaluate("el => { el.scrollLeft = 0 }")
    box = container.bounding_box()
    first = paths.nth(0).bounding_box()
    assert first["x"] >= box["x"] - 1, (first, box)
    for index, name in enumerate(["North America", "Europe", "Everyone else"]):
        path = paths.nth(index)
        path.scroll_into_view_if_needed()
        shown = path.bounding_box()
        box = container.bounding_box()
        assert shown["x"] >= box["x"] - 1, (name, shown, box)
        assert shown["x"] + shown["width"] <= box["x"] + box["width"] + 1, (name, shown, box)
        assert 0 <= shown["x"] and shown["x"] + shown["width"] <= width, (name, shown)
        expect(path.locator(".wf-path-head strong")).to_have_text(name)
        expect(path.locator(".wf-card .wf-title")).to_be_visible()
    if width == WIDTH:
        container.evaluate("el => { el.scrollLeft = 0 }")
        screenshot(page, "builder-branch-1280", full_page=False)


def test_a_money_condition_is_stored_in_minor_units_and_abc_is_refused_inline(
    new_page, mona, screenshot
):
    from playwright.sync_api import expect

    workflow = _workflow(mona, INVOICE_PAID)
    page = new_page(mona, width=WIDTH, height=HEIGHT)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    expect(page.locator("#wf-trigger")).to_contain_text("When Invoice paid")
    page.click("#wf-trigger .wf-title")
    page.wait_for_selector("#wf-trigger-form")
    field = page.locator('input[name="trig-g0-r0-field"]')
    value = page.locator('input[name="trig-g0-r0-value"]')
    currency = page.locator('select[name="trig-g0-r0-currency"]')

    # The value input follows the field's type while typing: a choice list for a status...
    field.fill("trigger.data.object.status")
    expect(value).to_have_attribute("list", "trig-g0-r0-value-options")
    expect(currency).to_be_hidden()
    # ...and a currency for an amount.
    field.fill("trigger.data.object.amount_paid")
    expect(currency).to_be_visible()
    expect(value).to_have_attribute("placeholder", "1,000.00")

    page.select_option('select[name="trig-g0-r0-op"]', "gt")
    value.fill("1,000.00")
    page.click("#wf-trigger-save")
    expect(page.locator("#wf-panel .wf-saved")).to_contain_text("Saved")

    conditions = workflow_definition(Workflow.objects.get(pk=workflow.pk))["trigger"]["conditions"]
    assert conditions == {
        "all": [{"field": "trigger.data.object.amount_paid", "op": "gt", "value": 100000}]
    }
    expect(page.locator('input[name="trig-g0-r0-value"]')).to_have_value("1,000.00")
    hint = page.locator("#trig-g0-r0-hint")
    expect(hint).to_have_text("1,000.00 USD · stored as 100000 (minor units)")
    expect(page.locator("#wf-trigger")).to_contain_text("Only if")
    screenshot(page, "builder-typed-condition", full_page=False)

    page.locator('input[name="trig-g0-r0-value"]').fill("abc")
    page.click("#wf-trigger-save")
    row = page.locator("#wf-cond-trig .wf-cond-row").first
    expect(row.locator(".wf-errors")).to_have_text(
        "amount_paid: 'abc' is not an amount: write it like 1,000.00"
    )
    expect(page.locator("#wf-panel .wf-saved")).to_have_count(0)
    conditions = workflow_definition(Workflow.objects.get(pk=workflow.pk))["trigger"]["conditions"]
    assert conditions["all"][0]["value"] == 100000
