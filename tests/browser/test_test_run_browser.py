"""The builder's test run in headless Chromium: it explains why an event would not start the
workflow, and the canvas stays in edit mode after it (add a step right away)."""

from __future__ import annotations

import pytest

from tests import factories
from tests.builder.test_test_run import HUGE_PAYMENTS
from workflows import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_test_run_says_why_the_event_would_not_start_it_and_the_canvas_stays_editable(
    new_page,
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = services.workflow_create(environment=live, definition=HUGE_PAYMENTS)
    factories.paid_charge(live, amount=150000, currency="usd")  # 1,500.00 USD
    page = new_page(mona)
    page.goto(f"/admin/workflows/{workflow.pk}/")

    page.click("#wf-test-link")
    page.wait_for_selector("#wf-test-form")
    page.click("#wf-test-submit")

    result = page.locator("#wf-test-result")
    expect(result).to_contain_text("Dry run: not started")
    expect(result).to_contain_text("amount 150000 is not greater than 999999999")
    expect(page.locator("#wf-node-tell_finance .wf-badge")).to_have_count(0)  # not walked
    # Still in edit mode: a + on the canvas opens the add-step panel.
    page.locator(".wf-add").first.click()
    page.wait_for_selector("#wf-add-form")
