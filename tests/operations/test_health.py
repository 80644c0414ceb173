"""The health report and GET /health/: run ages, stuck runs, events, clusters, 200 or 503.

Runs are written with timestamps in the past (factories.run_row). No cluster runs here, so
"clusters" is a problem unless the test expects none; tests/operations/test_health_clusters.py
starts real ones.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import Event
from tests import factories
from workflows.engine.runs import run_restart
from workflows.models import Run
from workflows.operations.health import health_report


@pytest.fixture
def no_cluster_expected(settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HEALTH_EXPECTED_CLUSTERS": 0}


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def test_it_reports_the_age_of_the_oldest_pending_run(region_workflow):
    now = timezone.now()
    factories.run_row(region_workflow, status="pending", created=now - timedelta(seconds=600))
    factories.run_row(region_workflow, status="pending", created=now - timedelta(seconds=30))
    factories.run_row(region_workflow, status="succeeded", created=now - timedelta(days=3))

    report = health_report(now=now)

    assert report["runs"]["pending"] == 2
    assert report["runs"]["oldest_pending_seconds"] == 600.0


def test_it_measures_a_retry_from_its_due_time_and_skips_retries_not_yet_due(region_workflow):
    now = timezone.now()
    factories.run_row(
        region_workflow,
        status="pending",
        created=now - timedelta(hours=2),
        next_attempt_at=now - timedelta(seconds=45),
    )
    factories.run_row(
        region_workflow,
        status="pending",
        created=now - timedelta(hours=5),
        next_attempt_at=now + timedelta(minutes=10),
    )

    report = health_report(now=now)

    assert report["runs"]["pending"] == 1
    assert report["runs"]["oldest_pending_seconds"] == 45.0


def test_it_measures_a_restarted_run_from_its_restart(region_workflow):
    run = factories.run_row(region_workflow, status="failed", created=ago(days=2))

    run_restart(run=run)
    report = health_report()

    assert Run.objects.get(pk=run.pk).status == Run.Status.PENDING
    assert report["runs"]["pending"] == 1
    assert report["runs"]["oldest_pending_seconds"] < 60


def test_it_counts_runs_stuck_past_their_lease(region_workflow):
    now = timezone.now()
    stuck = factories.run_row(
        region_workflow, status="running", lease_expires_at=now - timedelta(minutes=10)
    )
    # Expired a moment ago: the sweep takes it over within a minute, not stuck yet.
    factories.run_row(
        region_workflow, status="running", lease_expires_at=now - timedelta(seconds=10)
    )
    factories.run_row(
        region_workflow, status="running", lease_expires_at=now + timedelta(seconds=50)
    )

    report = health_report(now=now)

    assert report["runs"]["running"] == 3
    assert report["runs"]["lease_expired"] == 2
    assert report["runs"]["stuck"] == 1
    assert report["runs"]["stuck_run_ids"] == [stuck.pk]
    assert [p["check"] for p in report["problems"] if p["check"] != "clusters"] == ["stuck_runs"]


def test_it_is_unhealthy_when_a_pending_run_waits_past_the_limit(
    region_workflow, no_cluster_expected
):
    now = timezone.now()
    factories.run_row(region_workflow, status="pending", created=now - timedelta(seconds=200))
    assert health_report(now=now)["healthy"] is True

    factories.run_row(region_workflow, status="pending", created=now - timedelta(seconds=301))
    report = health_report(now=now)

    assert report["healthy"] is False
    assert report["status"] == "unhealthy"
    assert [p["check"] for p in report["problems"]] == ["pending_runs"]


def test_it_counts_events_not_dispatched(live, no_cluster_expected):
    factories.customer(live)  # customer.created, committed and dispatched in the test
    Event.objects.update(dispatched_at=None, created=ago(minutes=10))

    report = health_report()

    assert report["events"]["undispatched"] == 1
    assert report["events"]["oldest_undispatched_seconds"] >= 600
    assert [p["check"] for p in report["problems"]] == ["undispatched_events"]


def test_it_reports_no_cluster_alive_when_none_runs(db):
    report = health_report()

    assert report["clusters"]["alive"] == 0
    assert report["clusters"]["list"] == []
    assert report["healthy"] is False
    assert [p["check"] for p in report["problems"]] == ["clusters"]


def test_it_reports_the_queue_backlog(region_workflow):
    from workflows.engine.queue import run_enqueue

    run = factories.run_row(region_workflow, status="pending")
    run_enqueue(run.pk)
    run_enqueue(run.pk)

    assert health_report()["queue"]["backlog"] == 2


# --- GET /health/ ---------------------------------------------------------------------------


def test_it_answers_anonymous_probes_with_the_status_only(db, no_cluster_expected):
    response = Client().get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_when_unhealthy(region_workflow):
    factories.run_row(region_workflow, status="running", lease_expires_at=ago(hours=1))

    response = Client().get("/health/")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy"}


def test_it_shows_the_full_report_to_staff_who_may_view_runs(region_workflow, vic, settings):
    stuck = factories.run_row(region_workflow, status="running", lease_expires_at=ago(hours=1))
    client = Client()
    client.force_login(vic)

    response = client.get("/health/")

    assert response.status_code == 503
    body = response.json()
    assert body["runs"]["stuck_run_ids"] == [stuck.pk]
    assert body["clusters"]["alive"] == 0
    assert {p["check"] for p in body["problems"]} == {"stuck_runs", "clusters"}
    assert settings.SECRET_KEY not in response.content.decode()


def test_it_shows_only_the_status_to_a_user_without_a_role(db, olga):
    client = Client()
    client.force_login(olga)

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy"}


def test_it_answers_the_web_check_without_looking_at_workers(db):
    response = Client().get("/health/?check=web")

    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


def test_it_refuses_post(db):
    assert Client().post("/health/").status_code == 405


def test_it_answers_plain_http_probes_when_https_is_enforced(db, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert Client().get("/health/?check=web").status_code == 200
    assert Client().get("/admin/").status_code == 301
