"""An account manager backtests a workflow from the builder (Chromium): the Backtest panel, the
job waiting for a worker, the report appearing by HTMX polling with its two bar charts, and a
sample opened on the canvas.

The job is applied in this process by `backtest_apply` (what the worker's task calls).
"""

from __future__ import annotations

import pytest

from tests import factories
from tests.backtests.test_backtests import make_customer, segment_workflow_definition
from workflows.backtests.jobs import backtest_apply
from workflows.models import Backtest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_backtest_panel_shows_the_report_with_its_charts(new_page, live_server, screenshot):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, segment_workflow_definition())
    for i in range(15):
        make_customer(live, i)

    page = new_page(mona)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    page.click("#wf-backtest-link")
    expect(page.locator("#wf-backtest-form")).to_be_visible()
    page.select_option("#wf-backtest-version", "published")
    page.click("#wf-backtest-submit")
    expect(page.locator("#wf-backtest")).to_contain_text("waiting for a worker")
    backtest = Backtest.objects.get()
    assert backtest.user == mona and backtest.version_number == 1

    assert backtest_apply(backtest_id=backtest.pk, continue_with=None) == "done"
    # The panel polls every second: the report replaces the progress without a reload.
    expect(page.locator("#wf-backtest")).to_contain_text("done.")
    expect(page.locator("#wf-backtest-count")).to_have_text("15 / 15 events")
    expect(page.locator("#wf-backtest-starts")).to_contain_text("5 events would start")
    expect(page.locator("#wf-backtest-paths rect")).to_have_count(4)
    expect(page.locator("#wf-backtest-steps rect")).to_have_count(5)
    # The longest bar first: France and Germany went to Europe.
    expect(page.locator("#wf-backtest-paths title").first).to_have_text("Europe: 2")
    screenshot(page, "builder-backtest")

    # A sample opens on the canvas: its path drawn by a test run of its event.
    page.locator("#wf-backtest-samples li").filter(has_text="Europe").first.locator("a").click()
    expect(page.locator("#wf-backtest-sample")).to_contain_text(
        "Path: has_email → true; region → Europe"
    )
    expect(page.locator("#wf-canvas .wf-card").first).to_be_visible()
