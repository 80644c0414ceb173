"""Scale-out on real parts: 3 `qcluster` clusters on one PostgreSQL, 5,000 events, ledger audited.

The clusters share the database (ORM broker), the cluster name and SECRET_KEY, like N worker
hosts (docs/operations.md). Events are made the way the application makes them (billing
services; the dispatcher runs on commit), while the clusters already work, and every run sends
a real e-mail to an SMTP server in this process. No sweep is called: with no fault, the normal
path alone must lose nothing.
"""

from __future__ import annotations

import time

import pytest

from billing.models import Event
from tests import factories
from tests.ledger import audit_ledger
from tests.workers import qclusters, wait_for
from workflows.models import Run

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

EVENTS = 5000
CLUSTERS = 3
WORKERS_PER_CLUSTER = 2

WELCOME = {
    "name": "Welcome new customers",
    "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
    "steps": [
        {
            "id": "tag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.id }}",
                "metadata": {"welcomed": "yes", "by_run": "run {{ run.id }}"},
            },
        },
        {
            "id": "tell",
            "type": "action",
            "action": "team.email",
            "params": {
                "recipients": ["mona"],
                "subject": "New customer {{ trigger.data.object.id }}",
                "body": "{{ trigger.data.object.email }} signed up.",
            },
        },
    ],
}


def finished_runs() -> int:
    return Run.objects.filter(status__in=[Run.Status.SUCCEEDED, Run.Status.FAILED]).count()


# 5,000 events take minutes on 2 cores (docs/guarantees.md has the measured figures).
@pytest.mark.timeout(900)
def test_three_clusters_run_5000_events_with_every_effect_once(
    transactional_db, live, alice, mona, smtp_server
):
    workflow = factories.workflow_active(live, WELCOME, alice)
    # The clusters share the test process's queue name: its billing calls enqueue the runs.
    env = {"EMAIL_URL": smtp_server.url}
    started = time.monotonic()
    with qclusters(count=CLUSTERS, workers=WORKERS_PER_CLUSTER, env=env) as clusters:
        customers = [factories.customer(live, email=f"c{n}@example.com").pk for n in range(EVENTS)]
        pushed = time.monotonic() - started
        # A bound, not an estimate: see docs/guarantees.md for the measured time.
        wait_for(lambda: finished_runs() >= EVENTS, timeout=840, every=1.0)
        drained = time.monotonic() - started
        alive = [c.process.poll() is None for c in clusters]

    assert alive == [True] * CLUSTERS, "a cluster died on its own"
    report = audit_ledger(live, smtp=smtp_server, expect_runs=EVENTS, expect_emails=EVENTS)
    assert report.statuses == {Run.Status.SUCCEEDED: EVENTS}
    assert Event.objects.filter(type="customer.created").count() == EVENTS
    updated = Event.objects.filter(type="customer.updated", caused_by_run_id__isnull=False)
    assert sorted(updated.values_list("object_id", flat=True)) == sorted(customers)
    print(
        f"\n{EVENTS} events: pushed in {pushed:.1f}s, all runs finished after {drained:.1f}s "
        f"({EVENTS / drained:.1f} runs/s); {report.summary()}"
    )
    assert workflow.runs.count() == EVENTS
