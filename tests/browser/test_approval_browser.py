"""The approval step in headless Chromium: Mona adds an approval step in the builder and edits
it in its side panel (the card reads "Approval by …"); on the run page of a run waiting for her
approval she reads why it waits and until when, and approves it with a note."""

from __future__ import annotations

import pytest

from tests import factories
from tests.engine.test_approval_step import approving
from workflows import services
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_start_manual
from workflows.models import Approval, Run, Workflow
from workflows.services import workflow_definition

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_account_manager_adds_and_edits_an_approval_step(new_page):
    from playwright.sync_api import expect

    from tests.browser.test_builder_browser import _add_step, _save

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = services.workflow_create(
        environment=live, definition=factories.region_workflow_definition(), created_by=mona
    )
    page = new_page(mona)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    _add_step(page, position=1, kind="approval")
    expect(page.locator("#wf-node-approval")).to_contain_text(
        "Approval by Account Manager (48 h, then reject)"
    )
    page.fill("#id_approvers", "mona")
    page.fill("#id_timeout_hours", "2.5")
    page.select_option("#id_on_timeout", "approve")
    _save(page)
    expect(page.locator("#wf-node-approval")).to_contain_text(
        "Approval by mona (2.5 h, then approve)"
    )
    steps = workflow_definition(Workflow.objects.get(pk=workflow.pk))["steps"]
    assert steps[1]["approvers"] == ["mona"]
    assert (steps[1]["timeout_hours"], steps[1]["on_timeout"]) == (2.5, "approve")


def test_an_approver_approves_a_waiting_run_with_a_note(new_page):
    from playwright.sync_api import expect

    live = factories.environment("live")
    alice = factories.user("alice", "Admin")
    mona = factories.user("mona", "Account Manager")
    customer = factories.customer(live)
    workflow = factories.workflow_active(live, approving(), alice)
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    assert run_execute(run_id=run.pk) == Run.Status.WAITING

    page = new_page(mona)
    page.goto(f"/admin/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_text("waiting")
    expect(page.locator("#run-waiting")).to_contain_text("waiting for approval by mona")
    expect(page.locator("#run-waiting")).to_contain_text("(then reject)")
    expect(page.locator("#run-resume-at")).to_be_visible()
    expect(page.locator("#approval-message")).to_contain_text(f"Refund {customer.pk}?")
    page.fill("#approval-note", "Checked with the customer")
    page.click("#approve-button")
    expect(page.locator("#run-status")).to_have_text("pending")
    request = Approval.objects.get(run=run)
    assert (request.decision, request.decided_by, request.note) == (
        Approval.Decision.APPROVED,
        mona,
        "Checked with the customer",
    )

    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    page.reload()
    expect(page.locator("#decision-ok")).to_contain_text("approved by mona")
    expect(page.locator("#decision-ok")).to_contain_text("Checked with the customer")
