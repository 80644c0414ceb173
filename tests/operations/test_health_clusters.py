"""Cluster liveness with real `qcluster` processes on PostgreSQL.

Each cluster's heartbeat (django-q's Stat, 3 s time-to-live) lands in the shared database
cache; the health report in this process reads it. Waits are bounded; teardown kills every
process the test started, by process group.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.workers import qclusters, wait_for
from workflows.operations.health import clusters_status, health_report

pytestmark = [pytest.mark.postgres, pytest.mark.workers]


def alive_pids() -> set[int]:
    return {c["pid"] for c in clusters_status() if c["alive"]}


def ready_pids() -> set[int]:
    """Alive clusters whose worker is up: a cluster's first heartbeats come before its worker
    process has started, and report 0 workers."""
    return {c["pid"] for c in clusters_status() if c["alive"] and c["workers"] == 1}


def test_it_sees_each_cluster_alive_and_a_killed_one_gone(transactional_db, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HEALTH_EXPECTED_CLUSTERS": 2}
    # A cluster of an earlier test may still have a heartbeat for up to 3 seconds.
    wait_for(lambda: alive_pids() == set(), timeout=10, every=0.5)
    assert health_report()["clusters"]["alive"] == 0

    with qclusters(count=2, workers=1) as (first, second):
        wait_for(lambda: ready_pids() == {first.pid, second.pid}, timeout=60, every=0.5)
        report = health_report()
        assert report["healthy"] is True, report["problems"]
        assert report["clusters"]["alive"] == 2
        # A stopped cluster of an earlier test may still be listed (not alive) for 3 seconds.
        workers = {c["pid"]: c["workers"] for c in report["clusters"]["list"] if c["alive"]}
        assert workers == {first.pid: 1, second.pid: 1}
        assert Client().get("/health/").status_code == 200

        first.kill()  # SIGKILL to the whole cluster: a machine dying
        wait_for(lambda: alive_pids() == {second.pid}, timeout=20, every=0.5)
        report = health_report()
        assert report["healthy"] is False
        assert report["problems"] == [
            {"check": "clusters", "message": "1 worker cluster(s) alive, 2 expected."}
        ]
        assert Client().get("/health/").status_code == 503

    wait_for(lambda: alive_pids() == set(), timeout=20, every=0.5)
