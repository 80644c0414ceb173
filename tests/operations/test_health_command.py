"""`python manage.py health`: the same report as GET /health/, exit code 1 when unhealthy."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests import factories


def test_it_exits_1_and_names_the_problem_when_no_cluster_is_alive(db):
    out = StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("health", stdout=out)

    assert exit_info.value.code == 1
    assert "Clusters alive: 0 of 1" in out.getvalue()
    assert "Problem: 0 worker cluster(s) alive, 1 expected." in out.getvalue()


def test_it_exits_normally_when_healthy(db, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HEALTH_EXPECTED_CLUSTERS": 0}
    out = StringIO()

    call_command("health", stdout=out)

    assert out.getvalue().startswith("Status: ok")


def test_it_prints_the_report_as_json(region_workflow, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HEALTH_EXPECTED_CLUSTERS": 0}
    factories.run_row(
        region_workflow, status="pending", created=timezone.now() - timedelta(minutes=20)
    )
    out = StringIO()

    with pytest.raises(SystemExit):
        call_command("health", "--json", stdout=out)

    report = json.loads(out.getvalue())
    assert report["runs"]["pending"] == 1
    assert report["runs"]["oldest_pending_seconds"] >= 1200
    assert report["status"] == "unhealthy"


def test_it_notifies_a_new_stall_with_notify(region_workflow, live, mona, settings):
    from django.core import mail

    from workflows.operations.notifications import subscription_set

    subscription_set(user=mona, environment=live, workflow=None, on=True)
    factories.run_row(
        region_workflow, status="pending", created=timezone.now() - timedelta(minutes=20)
    )

    for _ in range(2):
        with pytest.raises(SystemExit):
            call_command("health", "--notify", stdout=StringIO(), stderr=StringIO())

    assert [m.to for m in mail.outbox] == [["mona@example.com"]]
