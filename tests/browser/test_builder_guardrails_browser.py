"""The Guardrails panel in headless Chromium: the card on the canvas opens it, a wrong amount is
refused next to its field, and saved caps show on the card.

Screenshot: docs/screenshots/builder-guardrails.png.
"""

from __future__ import annotations

import pytest

from tests import factories
from workflows import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_guardrails_panel_refuses_a_bad_amount_then_saves_and_the_card_shows_it(
    new_page, mona, screenshot
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    workflow = services.workflow_create(
        environment=live, definition=factories.region_workflow_definition(), created_by=mona
    )
    page = new_page(mona, width=1280, height=900)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    card = page.locator("#wf-guardrails")
    expect(card).to_contain_text("No money guardrails")
    card.locator(".wf-title").click()
    page.wait_for_selector("#wf-guardrails-form")

    page.fill("#id_max_amount_per_day", "usd 5,000.005")
    page.fill("#id_failure_rate", "0.5")
    page.click("#wf-guardrails-save")
    field = page.locator("#wf-field-max_amount_per_day")
    expect(field.locator(".errorlist")).to_contain_text("USD amounts have at most 2 decimals")
    expect(page.locator("#wf-field-min_runs .errorlist")).to_contain_text("Required")

    page.fill("#id_max_amount_per_day", "usd 5,000.00")
    page.fill("#id_max_runs_per_hour", "100")
    page.fill("#id_min_runs", "20")
    page.fill("#id_window_minutes", "60")
    page.click("#wf-guardrails-save")

    expect(page.locator("#wf-panel .wf-saved")).to_contain_text("Saved.")
    expect(card).to_contain_text("At most 5,000.00 USD per day")
    expect(card).to_contain_text("At most 100 money-moving runs per hour")
    expect(card).to_contain_text("Deactivated when 50% of at least 20 runs in 60 minutes fail")
    card.scroll_into_view_if_needed()
    screenshot(page, "builder-guardrails", full_page=False)
    workflow.refresh_from_db()
    definition = services.workflow_definition(workflow)
    assert definition["guardrails"] == {
        "max_amount_per_day": {"usd": 500000},
        "max_runs_per_hour": 100,
    }
