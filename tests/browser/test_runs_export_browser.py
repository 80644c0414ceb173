"""A viewer filters the runs list to failed runs and downloads them as CSV (Chromium).

Runs are executed in this process with the engine's `run_execute` (what a worker calls) through
`factories.run_executed`; the live server answers the browser.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests import factories
from workflows.inspector.export import COLUMNS
from workflows.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_viewer_exports_the_filtered_runs_list_as_csv(new_page, flaky):
    from playwright.sync_api import expect

    live = factories.environment("live")
    vic = factories.user("vic", "Viewer")
    workflow = factories.workflow_active(live, factories.flaky_definition("Ledger sync"))
    failed = [
        factories.run_executed(workflow, customer=factories.customer(live, email=f"f{i}@x.test"))
        for i in range(2)
    ]
    flaky["fail"] = False
    ok = factories.run_executed(workflow, customer=factories.customer(live, email="ok@x.test"))
    assert {r.status for r in failed} == {Run.Status.FAILED} and ok.status == "succeeded"

    page = new_page(vic)
    page.goto("/admin/runs/")
    expect(page.locator(f"#run-row-{ok.pk}")).to_be_visible()

    # Filtering swaps the results (HTMX), export links included, to the new filter.
    page.select_option("select[name=status]", "failed")
    expect(page.locator(f"#run-row-{ok.pk}")).to_have_count(0)
    expect(page.locator("#export-csv")).to_have_attribute("href", re.compile(r"status=failed"))

    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    assert re.fullmatch(r"runs-live-\d{8}-\d{6}\.csv", download.suggested_filename)
    with open(download.path(), encoding="utf-8") as file:
        text = file.read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == COLUMNS
    assert [int(r["run_id"]) for r in rows] == [failed[1].pk, failed[0].pk]
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["failed_step"] for r in rows} == {"sync"}
