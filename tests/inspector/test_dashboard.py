"""The runs dashboard: runs per day by status and failure rate per workflow, drawn as SVG."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests import factories
from workflows.engine.store.forcing import force_rows
from workflows.inspector.dashboard import DAYS, dashboard_charts, failure_rates, runs_per_day
from workflows.models import Run


@pytest.fixture
def runs(live, alice, flaky):
    """Ledger sync: 2 failed today, 1 succeeded 3 days ago; Other: 1 succeeded; 1 too old."""
    wf = factories.workflow_active(live, factories.flaky_definition("Ledger sync"), alice)
    other = factories.workflow_active(live, factories.flaky_definition("Other"), alice)
    failed = [factories.run_executed(wf, customer=factories.customer(live)) for _ in range(2)]
    flaky["fail"] = False
    ok = factories.run_executed(wf, customer=factories.customer(live))
    force_rows(Run.objects.filter(pk=ok.pk)).update(created=timezone.now() - timedelta(days=3))
    factories.run_executed(other, customer=factories.customer(live))
    old = factories.run_executed(other, customer=factories.customer(live))
    force_rows(Run.objects.filter(pk=old.pk)).update(
        created=timezone.now() - timedelta(days=DAYS + 5)
    )
    return {"workflow": wf, "other": other, "failed": failed}


def test_it_counts_runs_per_day_by_status(live, runs):
    days = runs_per_day(environment=live)
    today = timezone.localdate()
    assert len(days) == DAYS
    assert days[today]["failed"] == 2
    assert days[today]["succeeded"] == 1
    assert days[today - timedelta(days=3)]["succeeded"] == 1
    assert sum(sum(c.values()) for c in days.values()) == 4  # the old run is outside


def test_it_computes_the_failure_rate_per_workflow_worst_first(live, runs):
    rates = failure_rates(environment=live)
    assert [(r.workflow, r.failed, r.total) for r in rates] == [
        ("Ledger sync", 2, 3),
        ("Other", 0, 1),
    ]
    assert round(rates[0].rate, 3) == 0.667


def test_it_draws_one_bar_segment_per_day_and_status(live, runs):
    charts = dashboard_charts(environment=live)
    titles = [r.title for r in charts["per_day"].rects]
    assert f"{timezone.localdate().isoformat()}: 2 failed" in titles
    assert len(titles) == 3
    assert ("failed", "#c62828", 2) in charts["per_day"].legend


def test_it_serves_the_charts_as_svg_to_viewers(vic, runs):
    client = Client()
    client.force_login(vic)
    body = client.get(reverse("runs:dashboard")).content.decode()
    assert '<svg class="bf-chart" id="chart-per-day"' in body
    assert '<svg class="bf-chart" id="chart-failure-rate"' in body
    assert "66.7% (2/3)" in body
    assert "<script" not in body.split('id="runs-dashboard"')[1].split("</section>")[0]


def test_it_forbids_the_dashboard_to_a_user_without_a_role(olga, runs):
    client = Client()
    client.force_login(olga)
    assert client.get(reverse("runs:dashboard")).status_code == 403


def test_it_shows_only_this_environments_runs(sandbox, alice, vic, runs, flaky):
    wf = factories.workflow_active(sandbox, factories.flaky_definition("Sandbox only"), alice)
    factories.run_executed(wf, customer=factories.customer(sandbox))
    client = Client()
    client.force_login(vic)
    assert "Sandbox only" not in client.get(reverse("runs:dashboard")).content.decode()


def test_it_serves_only_the_charts_to_htmx_for_embedding(vic, runs):
    client = Client()
    client.force_login(vic)
    body = client.get(reverse("runs:dashboard"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in body
    assert '<section class="bf-dashboard" id="runs-dashboard">' in body
