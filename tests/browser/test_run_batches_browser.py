"""An account manager restarts every failed run matching the list's filter as a run batch and
watches it in the page (Chromium): the confirmation with the grouped preview, the progress bar
(HTMX polling), the summary, and the list's rows turning from failed to pending without a reload.
A second test selects two rows and cancels them: both are skipped, with the reason.

The job is applied in this process by `batch_apply` (what the worker's task calls); after each
slice it waits until the page shows that slice's count, so every step of the bar is seen.
"""

from __future__ import annotations

import pytest

from tests import factories
from workflows.batches.jobs import APPLY_SLICE, batch_apply
from workflows.engine.runs import run_start_manual
from workflows.models import Run, RunBatch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RUNS = APPLY_SLICE * 2 + 20  # three slices


def test_a_filter_wide_restart_shows_its_progress_and_updates_the_rows(
    new_page, live_server, flaky, screenshot
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, factories.flaky_definition("Ledger sync"))
    failed = [
        factories.run_executed(workflow, customer=factories.customer(live, email=f"f{i}@x.test"))
        for i in range(RUNS)
    ]
    assert {r.status for r in failed} == {Run.Status.FAILED}
    shown = failed[-10:]  # the newest, on the list's first page

    page = new_page(mona)
    page.goto("/admin/runs/?status=failed")
    for run in shown:
        expect(page.locator(f"#run-row-{run.pk} .bf-badge")).to_have_text("failed")
    page.check("#select-all-matching")
    page.click("#bulk-restart")
    # The confirmation: the grouped preview of what runs again.
    expect(page.locator("#bulk-total")).to_have_text(str(RUNS))
    expect(page.locator(".bf-preview-groups")).to_contain_text("sync")
    page.click("#confirm-bulk-restart")
    expect(page.locator("#batch-panel")).to_contain_text("waiting for a worker")
    batch = RunBatch.objects.get()
    assert batch.selection["filter"] == {"status": "failed"} and batch.user == mona

    seen: list[str] = []

    def page_follows(progress: RunBatch) -> None:
        processed = progress.done + progress.skipped + progress.failed
        text = f"{processed} / {progress.total}"
        expect(page.locator("#batch-count")).to_have_text(text)
        expect(page.locator("#batch-progress")).to_have_attribute("value", str(processed))
        seen.append(text)

    assert batch_apply(batch_id=batch.pk, on_progress=page_follows, continue_with=None) == (
        RunBatch.Status.SUCCEEDED
    )
    assert seen == [
        f"0 / {RUNS}",
        f"50 / {RUNS}",
        f"100 / {RUNS}",
        f"{RUNS} / {RUNS}",
        f"{RUNS} / {RUNS}",
    ]
    expect(page.locator("#batch-panel")).to_contain_text("finished")
    expect(page.locator("#batch-done")).to_have_text(str(RUNS))
    expect(page.locator("#batch-skipped")).to_have_text("0")
    # The rows the batch changed were swapped in place: no reload, no run shown as failed.
    for run in shown:
        expect(page.locator(f"#run-row-{run.pk} .bf-badge")).to_have_text("pending")
    expect(page.locator("#run-table .bf-badge-failed")).to_have_count(0)
    assert "batch=" not in page.url  # the same page, never reloaded
    screenshot(page, "runs-batch-progress")


def test_selected_rows_that_cannot_be_canceled_are_skipped_with_the_reason(
    new_page, live_server, flaky
):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = factories.workflow_active(live, factories.flaky_definition("Ledger sync"))
    failed = factories.run_executed(workflow, customer=factories.customer(live))
    pending = run_start_manual(workflow=workflow, input={"customer": factories.customer(live).pk})

    page = new_page(mona)
    page.goto("/admin/runs/")
    page.check(f"#run-row-{failed.pk} .bf-row-select")
    page.check(f"#run-row-{pending.pk} .bf-row-select")
    page.click("#bulk-cancel")
    expect(page.locator("#batch-panel")).to_contain_text("Cancel batch")
    batch = RunBatch.objects.get()
    assert (batch.action, batch.total) == ("cancel", 2)
    batch_apply(batch_id=batch.pk, continue_with=None)
    expect(page.locator("#batch-done")).to_have_text("1")
    expect(page.locator("#batch-skipped")).to_have_text("1")
    expect(page.locator("#batch-reasons")).to_contain_text(
        "1 × failed: only pending, running or waiting runs can be canceled"
    )
    expect(page.locator(f"#run-row-{pending.pk} .bf-badge")).to_have_text("canceled")
    expect(page.locator(f"#run-row-{failed.pk} .bf-badge")).to_have_text("failed")
