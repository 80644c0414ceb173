"""The builder in headless Chromium.

Mona (Account Manager) builds the region workflow from an empty one, publishes and activates
it; a customer created in France then carries Location=Europe in the admin. An invalid step
shows the engine's error next to its field. Sam (Customer Support) sees workflows but no edit
controls, and every builder endpoint that changes something answers him 403.

The run that the customer's event starts is executed in this process with the engine's
`run_execute` (what a qcluster worker calls for it), against the live server's database.
Screenshots of the list, the canvas with a branch and a loop, and the side panel are saved under
docs/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from billing import services as billing
from tests import factories
from workflows import services
from workflows.engine.executor import run_execute
from workflows.management.commands.bench_builder import twelve_step_definition
from workflows.models import Run, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for_panel(page, text: str) -> None:
    page.wait_for_selector(f"#wf-panel:has-text('{text}')")


def _add_step(
    page,
    *,
    parent: str = "",
    path: str = "",
    position: int = 0,
    kind: str = "action",
    action: str = "",
) -> None:
    selector = f'.wf-add[data-parent="{parent}"][data-path="{path}"][data-position="{position}"]'
    page.click(selector)
    page.wait_for_selector("#wf-add-form")
    page.check(f'input[name=kind][value="{kind}"]')
    if action:
        page.select_option("#id_action", action)
    page.click("#wf-add-submit")
    page.wait_for_selector("#wf-step-form")


def _fill_condition(page, prefix: str, field: str, op: str, value: str) -> None:
    page.fill(f'input[name="{prefix}-g0-r0-field"]', field)
    page.select_option(f'select[name="{prefix}-g0-r0-op"]', op)
    page.fill(f'input[name="{prefix}-g0-r0-value"]', value)


def _save(page) -> None:
    page.click("#wf-save")
    # "Saved." (not the "Added step" note the panel shows before the first save)
    page.wait_for_selector("#wf-panel .wf-saved:has-text('Saved')")


def test_an_account_manager_builds_publishes_and_activates_the_region_workflow(
    new_page, login, screenshot
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    factories.user("mona", "Account Manager")
    page = new_page()
    login(page, "mona")

    # An empty workflow, started by customer.created.
    page.goto("/admin/workflows/")
    page.fill("#id_name", "Tag customer region")
    page.select_option("#id_event", "customer.created")
    page.click("#wf-create")
    page.wait_for_url(re.compile(r"/admin/workflows/\d+/$"))
    expect(page.locator("#wf-trigger")).to_contain_text("When Customer created")
    expect(page.locator("#wf-trigger .wf-event-type")).to_have_text("customer.created")
    expect(page.locator("#wf-step-count")).to_have_text("0 of 12 steps")

    # A branch: US/CA -> North America, FR/DE/IT -> Europe, else Global.
    _add_step(page, kind="branch")
    page.fill('input[name="path0-name"]', "North America")
    _fill_condition(page, "path0", "trigger.data.object.address.country", "in", "US, CA")
    page.fill('input[name="path1-name"]', "Global")
    page.click('button[name="_editor"][value="path:add"]')
    page.wait_for_selector('input[name="path2-name"]')
    page.fill('input[name="path2-name"]', "Europe")
    _fill_condition(page, "path2", "trigger.data.object.address.country", "in", "FR, DE, IT")
    _save(page)
    paths = page.locator("#wf-node-branch .wf-path-head strong")
    expect(paths).to_have_text(["North America", "Europe", "Global"])

    # One customers.update per path; the first one's customer comes from the field picker.
    for index, location in enumerate(["North America", "Europe", "Global"]):
        _add_step(page, parent="branch", path=str(index), action="customers.update")
        if index == 0:
            page.click("#wf-field-p_customer .wf-picker-open")
            page.wait_for_selector("#wf-slot-id_p_customer .wf-picker")
            page.fill("#wf-slot-id_p_customer input[name=q]", "object.id")
            pick = '#wf-slot-id_p_customer .wf-pick[data-insert="{{ trigger.data.object.id }}"]'
            page.wait_for_selector(pick)
            page.click(pick)
            expect(page.locator("#id_p_customer")).to_have_value("{{ trigger.data.object.id }}")
        else:
            page.fill("#id_p_customer", "{{ trigger.data.object.id }}")
        page.fill("#id_p_metadata", f"Location = {location}")
        _save(page)
    expect(page.locator("#wf-canvas")).to_contain_text(
        "Update a customer — metadata Location = Europe"
    )
    expect(page.locator("#wf-step-count")).to_have_text("4 of 12 steps")
    expect(page.locator("#wf-problems")).to_have_count(0)

    page.click("#wf-publish")
    expect(page.locator(".messagelist")).to_contain_text("Published")
    page.click("#wf-activate")
    expect(page.locator("#wf-header .wf-status")).to_have_text("Active")

    workflow = Workflow.objects.get(name="Tag customer region")
    assert workflow.status == Workflow.Status.ACTIVE
    assert workflow.published_version.number == 1

    # A customer in France: its event starts a run, which a worker executes.
    customer = billing.customer_create(
        environment=live,
        email="amelie@example.com",
        name="Amélie",
        address={
            "line1": "1 rue de Rivoli",
            "city": "Paris",
            "postal_code": "75001",
            "country": "FR",
        },
    )
    run = Run.objects.get(workflow=workflow)
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    page.goto(f"/admin/billing/customer/{customer.pk}/change/")
    expect(page.locator("#content")).to_contain_text("Location")
    expect(page.locator("#content")).to_contain_text("Europe")
    customer.refresh_from_db()
    assert customer.metadata == {"Location": "Europe"}

    page.goto("/admin/workflows/")
    expect(page.locator("#wf-limits")).to_contain_text("1 of 6 active")
    screenshot(page, "builder-list")


def test_an_invalid_step_shows_the_engines_error_next_to_the_field(new_page, screenshot):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = services.workflow_create(
        environment=live, definition=factories.region_workflow_definition(), created_by=mona
    )
    page = new_page(mona)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    _add_step(page, position=1, action="customers.update")
    page.fill("#id_p_customer", "{{ trigger.data.object.no_such_field }}")
    page.fill("#id_p_metadata", "Checked = yes")
    page.click("#wf-save")
    field = page.locator("#wf-field-p_customer")
    expect(field).to_have_class(re.compile("wf-field-error"))
    expect(field.locator(".wf-errors")).to_contain_text(
        "'no_such_field' is not a field of customer"
    )
    expect(page.locator("#wf-problems")).to_contain_text("1 problem")
    expect(page.locator("#wf-publish")).to_be_disabled()


def test_support_sees_workflows_without_edit_controls_and_gets_403(new_page):
    from playwright.sync_api import expect

    live = factories.environment("live")
    sam = factories.user("sam", "Customer Support")
    workflow = factories.workflow_active(live, factories.region_workflow_definition())
    page = new_page(sam)

    page.goto("/admin/workflows/")
    expect(page.locator("#wf-table")).to_contain_text("Tag customer region")
    expect(page.locator("#wf-create-form")).to_have_count(0)
    expect(page.locator(".wf-row-actions")).to_have_count(0)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    expect(page.locator("#wf-canvas")).to_contain_text("Update a customer — metadata Location")
    for control in [".wf-add", "#wf-publish", "#wf-deactivate", "#wf-test-link"]:
        expect(page.locator(control)).to_have_count(0)
    page.click("#wf-node-tag_eu .wf-title")
    page.wait_for_selector("#wf-step-form")
    expect(page.locator("#wf-save")).to_have_count(0)
    expect(page.locator("#wf-delete-step")).to_have_count(0)

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    base = f"/admin/workflows/{workflow.pk}"
    posts = [
        "/admin/workflows/create/",
        "/admin/workflows/import/",
        f"{base}/duplicate/",
        f"{base}/publish/",
        f"{base}/activate/",
        f"{base}/deactivate/",
        f"{base}/delete/",
        f"{base}/trigger/",
        f"{base}/steps/add/",
        f"{base}/steps/tag_eu/",
        f"{base}/steps/tag_eu/move/",
        f"{base}/steps/tag_eu/duplicate/",
        f"{base}/steps/tag_eu/delete/",
        f"{base}/versions/1/restore/",
        f"{base}/test/",
        f"{base}/run/",
    ]
    for url in posts:
        response = page.request.post(url, headers={"X-CSRFToken": token}, form={"x": "1"})
        assert response.status == 403, (url, response.status)
        assert "CSRF" not in response.text(), url  # refused for the role, not the token
    for url in [f"{base}/steps/add/", f"{base}/delete/", f"{base}/test/", f"{base}/run/"]:
        assert page.request.get(url).status == 403, url
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.ACTIVE and workflow.deleted_at is None


def test_screenshots_of_the_canvas_with_a_branch_and_a_loop_and_the_side_panel(
    new_page, screenshot
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = services.workflow_create(
        environment=live, definition=twelve_step_definition("Tag and follow up"), created_by=mona
    )
    page = new_page(mona, width=1500, height=1300)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    expect(page.locator("#wf-node-each_sub .wf-loop")).to_contain_text("Update a subscription")
    expect(page.locator("#wf-node-region .wf-path")).to_have_count(3)
    screenshot(page, "builder-canvas")
    page.click("#wf-node-tag_eu .wf-title")
    page.wait_for_selector("#wf-step-form")
    page.click("#wf-field-p_customer .wf-picker-open")
    page.wait_for_selector("#wf-slot-id_p_customer .wf-picker")
    expect(page.locator("#wf-slot-id_p_customer")).to_contain_text("steps.fetch.output.email")
    screenshot(page, "builder-side-panel", full_page=False)
