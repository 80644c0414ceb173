"""The retention backlog in the health report: its size (bounded), the age of the oldest
prunable run past the window, and "degraded" (still 200) when the prune has fallen behind."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests import factories
from workflows.operations import retention
from workflows.operations.health import health_report


@pytest.fixture(autouse=True)
def no_cluster_expected(settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HEALTH_EXPECTED_CLUSTERS": 0}


def days_ago(n: float):
    return timezone.now() - timedelta(days=n)


def test_it_reports_no_backlog_when_the_prune_keeps_up(region_workflow):
    factories.run_row(region_workflow, status="succeeded", created=days_ago(89))
    factories.run_row(region_workflow, status="failed", created=days_ago(400))  # never pruned

    report = health_report()

    assert report["retention"] == {
        "window_days": 90,
        "backlog": {"runs": 0, "more": False, "oldest_past_window_seconds": 0.0},
    }
    assert report["status"] == "ok"
    assert report["warnings"] == []


def test_a_young_backlog_is_reported_without_a_warning(region_workflow):
    for _ in range(2):
        factories.run_row(region_workflow, status="succeeded", created=days_ago(90.05))  # 1.2 h

    report = health_report()

    backlog = report["retention"]["backlog"]
    assert (backlog["runs"], backlog["more"]) == (2, False)
    assert 1.1 * 3600 < backlog["oldest_past_window_seconds"] < 1.3 * 3600
    assert report["status"] == "ok"


def test_an_old_backlog_makes_health_degraded_but_still_200(region_workflow, vic):
    six_hours_past = days_ago(90.25)
    factories.run_row(
        region_workflow, status="resolved", created=six_hours_past, finished_at=six_hours_past
    )

    report = health_report()

    assert report["status"] == "degraded"
    assert report["healthy"] is True
    assert [w["check"] for w in report["warnings"]] == ["retention_backlog"]
    message = report["warnings"][0]["message"]
    assert (
        "Retention is behind: 1 run(s) past the window, the oldest by 6.0 h (limit 3 h)" in message
    )
    assert report["problems"] == []
    anonymous = Client().get("/health/")
    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "degraded"})
    staff = Client()
    staff.force_login(vic)
    assert staff.get("/health/").json()["retention"]["backlog"]["runs"] == 1
    out = StringIO()
    call_command("health", stdout=out)  # exits normally: degraded is not unhealthy
    assert "Warning: Retention is behind" in out.getvalue()


def test_it_counts_the_backlog_only_up_to_its_limit(region_workflow, monkeypatch):
    monkeypatch.setattr(retention, "BACKLOG_COUNT_LIMIT", 2)
    for _ in range(3):
        factories.run_row(region_workflow, status="canceled", created=days_ago(100))

    backlog = retention.retention_backlog()

    assert (backlog["runs"], backlog["more"]) == (2, True)
    assert backlog["oldest_past_window_seconds"] > 9 * 86400
