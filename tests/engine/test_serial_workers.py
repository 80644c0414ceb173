"""One at a time per customer with real `qcluster` workers on PostgreSQL: the runs of one
customer never overlap and follow its events' order, while other customers' runs go on in
parallel; a failed run holds the key until restarted, or until its max wait is over."""

from __future__ import annotations

import pytest

from billing import services as billing
from tests import factories
from tests.engine.test_serial_runs import serialized
from tests.httpserver import Reply
from tests.workers import qclusters, wait_for
from workflows.engine.runs import run_restart
from workflows.engine.serial import note_of
from workflows.engine.sweep import sweep
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

ENV = {"BILLFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1"}
SLOW = 0.08  # the partner's answer takes this long: each run's one step is slow


@pytest.fixture
def partner(http_server, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.default = Reply(200, {"ok": True}, delay=SLOW)
    return http_server


def update(customer, n: int) -> None:
    billing.customer_update(customer=customer, changes={"metadata": {"n": str(n)}})


def intervals(runs: list[Run]) -> list[tuple]:
    steps = {s.run_id: s for s in StepRun.objects.filter(run__in=runs)}
    return [(steps[r.pk].started_at, steps[r.pk].finished_at) for r in runs]


def test_one_customers_runs_never_overlap_while_others_run_in_parallel(
    transactional_db, live, alice, partner
):
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    ana = factories.customer(live)
    others = [factories.customer(live) for _ in range(10)]
    for n in range(50):  # interleaved: ana's 50 events and 50 of ten other customers
        update(ana, n)
        update(others[n % 10], n)
    assert Run.objects.count() == 100

    with qclusters(count=1, workers=4, env=ENV):
        wait_for(lambda: Run.objects.filter(status=Run.Status.SUCCEEDED).count() == 100, timeout=60)

    ana_runs = list(Run.objects.filter(serial_key=ana.pk).order_by("pk"))
    assert len(ana_runs) == 50
    # Run ids follow the events' order: ana's events were recorded one after the other.
    events = [r.event.created for r in ana_runs]
    assert events == sorted(events)
    spans = intervals(ana_runs)
    for (_, finished), (started, _) in zip(spans, spans[1:], strict=False):
        assert finished <= started  # one at a time, in event order
    other_spans = intervals(list(Run.objects.exclude(serial_key=ana.pk)))
    overlapping = [
        o for o in other_spans if any(o[0] < a_end and a_start < o[1] for a_start, a_end in spans)
    ]
    assert overlapping, "no other customer's run ran while one of ana's did"
    # Every one of the 100 events was sent to the partner once.
    assert len(partner.requests) == 100


def test_a_failed_run_holds_the_key_until_restarted(transactional_db, live, alice, partner):
    factories.workflow_active(live, serialized(partner.url("/hook")), alice)
    ana = factories.customer(live)
    partner.script(Reply(400, {"no": True}))  # the first send is refused: the run fails
    with qclusters(count=1, workers=2, env=ENV):
        update(ana, 1)
        update(ana, 2)
        first, second = Run.objects.filter(serial_key=ana.pk).order_by("pk")
        wait_for(
            lambda: Run.objects.filter(pk=first.pk, status=Run.Status.FAILED).exists(),
            timeout=30,
        )
        sweep()  # as the schedule would: the held run is looked at, and stays pending
        wait_for(lambda: not StepRun.objects.filter(run=second).exists() or None, timeout=1)
        second.refresh_from_db()
        assert second.status == Run.Status.PENDING
        assert note_of(second)["reason"].startswith(
            f"waiting for run #{first.pk} (same customer {ana.pk}) to finish: it failed at"
        )
        first.refresh_from_db()
        run_restart(run=first, user=alice)  # the partner is fixed: it answers 200 again
        wait_for(
            lambda: Run.objects.filter(serial_key=ana.pk, status=Run.Status.SUCCEEDED).count() == 2,
            timeout=30,
        )
    (_, first_end), (second_start, _) = intervals([first, second])
    assert first_end <= second_start


def test_after_the_max_wait_the_next_run_proceeds_without_a_restart(
    transactional_db, live, alice, partner
):
    definition = serialized(partner.url("/hook"), serialize_max_wait_minutes=0.05)  # 3 s
    factories.workflow_active(live, definition, alice)
    ana = factories.customer(live)
    partner.script(Reply(400, {"no": True}))
    with qclusters(count=1, workers=2, env=ENV):
        update(ana, 1)
        update(ana, 2)
        first, second = Run.objects.filter(serial_key=ana.pk).order_by("pk")

        def second_done() -> bool:
            sweep()  # the schedule's pass, which enqueues the held run once the wait is over
            return Run.objects.filter(pk=second.pk, status=Run.Status.SUCCEEDED).exists()

        wait_for(second_done, timeout=30, every=0.5)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Run.Status.FAILED
    assert (second.started_at - first.finished_at).total_seconds() >= 3
    assert note_of(second)["reason"] == (
        f"started after run #{first.pk} had failed for 3 s (serialize_by customer)"
    )
