"""A backtest on the workers (PostgreSQL, real `qcluster` processes) reports what real runs of
the same version did on the same 10,000 stored events: as many runs, the same branch decisions,
each step as often as it succeeded; also when the worker replaying it was killed (`kill -9` at
the `backtest_chunk` fault point) and the sweep handed it to another."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from billing.models import Event
from tests import factories
from tests.api_client import api_for
from tests.backtests.test_backtests import (
    backtest_report,
    make_customer,
    runs_report,
    segment_workflow_definition,
)
from tests.workers import qclusters, wait_for
from workflows.backtests.jobs import backtests_resume
from workflows.models import Backtest, Run

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

EVENTS = 10_000
TRIAL_EVERY = 10  # 1,000 of them start a run
KILLED_AT = 2_000  # the worker dies having replayed the chunk after this many events


def test_a_backtest_over_10000_stored_events_counts_what_real_runs_did(
    transactional_db, live, alice, tmp_path
):
    began = time.monotonic()
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    since = timezone.now()
    faults = str(tmp_path)
    env = {"BILLFLOW_FAULTS": f"backtest_chunk@{KILLED_AT}", "BILLFLOW_FAULT_DIR": faults}
    with qclusters(count=1, workers=2, env=env):
        # Through the service, so each event is dispatched as in production; 500 customers a
        # transaction (each service call its own savepoint) to keep the test short.
        for first in range(0, EVENTS, 500):
            with transaction.atomic():
                for i in range(first, first + 500):
                    make_customer(live, i, trial_every=TRIAL_EVERY)
        made = time.monotonic()
        runs = Run.objects.filter(workflow=workflow)
        assert runs.count() == EVENTS // TRIAL_EVERY
        wait_for(
            lambda: runs.filter(status=Run.Status.SUCCEEDED).count() == EVENTS // TRIAL_EVERY,
            timeout=240,
            every=0.5,
        )
        ran = time.monotonic()

        manager = api_for(live, role="account_manager")
        response = manager.post(
            f"/workflows/{workflow.pk}/backtests",
            {"since": since.isoformat(), "until": timezone.now().isoformat()},
        )
        assert response.status_code == 202, response.content
        backtest_id = response.json()["id"]

        # The worker that replayed the chunk after KILLED_AT events is killed before counting
        # it: its task is gone, the backtest stays running at the cursor with those counts.
        marker = Path(faults) / f"backtest_chunk-{backtest_id}-{KILLED_AT}-_"
        wait_for(marker.exists, timeout=60, every=0.05)
        killed = Backtest.objects.get(pk=backtest_id)
        assert (killed.status, killed.events_scanned) == ("running", KILLED_AT)

        scanned: list[int] = []

        def finished() -> dict | None:
            backtests_resume(stale=timedelta(seconds=2))  # the sweep, with a short staleness
            body = manager.get(f"/backtests/{backtest_id}").json()
            scanned.append(body["events_scanned"])
            return body if body["status"] in ("done", "failed") else None

        body = wait_for(finished, timeout=120, every=0.5)
        tested = time.monotonic()

    assert body["status"] == "done", body["error"]
    assert Event.objects.filter(type="customer.created").count() == EVENTS
    assert (body["events_total"], body["events_scanned"]) == (EVENTS, EVENTS)
    assert scanned == sorted(scanned) and scanned[0] >= KILLED_AT  # progress never went back
    backtest = Backtest.objects.get(pk=backtest_id)
    expected = runs_report(workflow)
    assert backtest_report(backtest) == expected
    assert expected["would_start"] == EVENTS // TRIAL_EVERY
    assert set(expected["paths"]) == {
        "stopped at has_email",
        "North America",
        "Europe",
        "Everyone else",
    }
    print(
        f"\n{EVENTS} events made in {made - began:.0f} s, {expected['would_start']} runs done "
        f"{ran - made:.0f} s later, backtest {tested - ran:.0f} s, whole test "
        f"{time.monotonic() - began:.0f} s"
    )
