"""An account manager chooses a restart mode in the preview and restarts; then resolves another
failed run with a note (Chromium, HTMX swaps as a person sees them).

The run is executed in this process with the engine's `run_execute` (what a worker calls).
"""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser.test_inspector_restart import signed_in_page
from workflows.engine.executor import run_execute
from workflows.models import Run, RunNote, StepRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_choosing_from_the_start_then_resolving_another_run_with_a_note(
    chromium, live_server, flaky
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, factories.flaky_definition("Ledger sync"))
    target, other = (
        factories.run_executed(workflow, customer=factories.customer(live, email=f"f{i}@x.test"))
        for i in range(2)
    )
    assert target.status == other.status == Run.Status.FAILED

    context, page = signed_in_page(chromium, live_server, mona)
    try:
        page.goto(f"{live_server.url}/admin/runs/{target.pk}/")
        page.click("#restart-link")
        preview = page.locator("#restart-preview")
        expect(preview.locator('tr[data-step="tag"]')).to_contain_text("kept (not run)")

        # Another mode: HTMX swaps the preview; the tag's effect is said to happen again.
        page.check("#mode-from_start")
        expect(preview.locator('tr[data-step="tag"]')).to_contain_text("runs again")
        expect(preview.locator('tr[data-step="tag"]')).to_contain_text("its effects happen again")
        expect(page.locator("#repeats-warning")).to_contain_text("tag")

        flaky["fail"] = False
        page.click("#confirm-restart")
        expect(page.locator("#run-status")).to_have_text("pending")
        expect(page.locator(".messagelist .success")).to_contain_text("restarted from the start")
        assert run_execute(run_id=target.pk) == Run.Status.SUCCEEDED
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=10_000)
        tag = StepRun.objects.get(run=target, step_id="tag")
        assert [a["restart"] for a in tag.attempt_log] == [0, 1]
        expect(page.locator("#step-tag .bf-attempt-log tr")).to_have_count(3)  # head + 2

        # The other failure needs no restart: resolve it, a note is required.
        page.goto(f"{live_server.url}/admin/runs/{other.pk}/")
        page.click("#resolve-link")
        page.click("#confirm-resolve")
        expect(page.locator("#resolve-error")).to_contain_text("note: Write a note")
        page.fill("#resolve-note", "Synced by hand in the ledger.")
        page.click("#confirm-resolve")
        expect(page.locator("#run-status")).to_have_text("resolved")
        expect(page.locator("#run-notes")).to_contain_text("Synced by hand in the ledger.")
        assert RunNote.objects.get(run=other).kind == RunNote.Kind.RESOLUTION
    finally:
        context.close()
