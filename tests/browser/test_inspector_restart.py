"""An account manager finds a failed run, reads why, restarts it and sees it succeed (Chromium).

The live server runs in this process; the run is executed in-process with the engine's
`run_execute` (what a worker calls), so the `tests.flaky` action registered here is the one the
engine uses. Screenshots of the runs list and a run page are saved under docs/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from tests import factories
from workflows.engine.executor import run_execute
from workflows.models import Run, RunAudit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def signed_in_page(chromium, live_server, user):
    client = Client()
    client.force_login(user)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context, context.new_page()


def test_an_account_manager_restarts_a_failed_run_through_the_preview(chromium, live_server, flaky):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, factories.flaky_definition("Ledger sync"))
    failed = [
        factories.run_executed(workflow, customer=factories.customer(live, email=f"f{i}@x.test"))
        for i in range(2)
    ]
    flaky["fail"] = False
    ok = factories.run_executed(workflow, customer=factories.customer(live, email="ok@x.test"))
    flaky["fail"] = True
    target = failed[-1]
    assert target.status == Run.Status.FAILED and ok.status == Run.Status.SUCCEEDED

    context, page = signed_in_page(chromium, live_server, mona)
    try:
        page.goto(f"{live_server.url}/admin/runs/")
        expect(page.locator(f"#run-row-{ok.pk}")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "runs-list.png"), full_page=True)

        # Filter to failed runs: HTMX swaps the results and pushes the URL.
        page.select_option("select[name=status]", "failed")
        expect(page.locator(f"#run-row-{ok.pk}")).to_have_count(0)
        expect(page.locator(f"#run-row-{target.pk}")).to_be_visible()
        assert "status=failed" in page.url

        page.click(f"#run-row-{target.pk} a")
        expect(page.locator("#run-status")).to_have_text("failed")
        error = page.locator("#step-sync .bf-step-error")
        expect(error).to_contain_text("Ledger said no: account frozen.")
        page.screenshot(path=str(SCREENSHOTS / "run-page.png"), full_page=True)

        page.click("#restart-link")
        preview = page.locator("#restart-preview")
        expect(preview.locator('tr[data-step="sync"]')).to_contain_text("runs again")
        expect(preview.locator('tr[data-step="sync"]')).to_contain_text("changes data or sends")
        expect(preview.locator('tr[data-step="tag"]')).to_contain_text("kept (not run)")

        flaky["fail"] = False  # the ledger is back
        page.click("#confirm-restart")
        expect(page.locator("#run-status")).to_have_text("pending")
        # A worker picks the run up (here: the engine, in this process).
        assert run_execute(run_id=target.pk) == Run.Status.SUCCEEDED
        # The page polls the unfinished run and shows the result without a reload.
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=10_000)
        expect(page.locator("#run-audit")).to_contain_text("Restart")
        expect(page.locator("#run-audit")).to_contain_text("mona")

        page.goto(f"{live_server.url}/admin/runs/dashboard/")
        expect(page.locator("#chart-per-day rect.bf-bar").first).to_be_visible()
        expect(page.locator("#chart-failure-rate")).to_contain_text("Ledger sync")
        page.screenshot(path=str(SCREENSHOTS / "runs-dashboard.png"), full_page=True)

        # The workflows overview loads the same charts after the page (HTMX).
        page.goto(f"{live_server.url}/admin/workflows/")
        expect(page.locator("#chart-failure-rate")).to_contain_text("Ledger sync")
    finally:
        context.close()

    assert RunAudit.objects.get(run=target).user == mona
    assert flaky["done"] == {f"{target.pk}/sync/": 1, f"{ok.pk}/sync/": 1}
