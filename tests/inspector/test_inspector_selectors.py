"""Run queries: filters and keyset pages (workflows/inspector/selectors.py), on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests import factories
from workflows.engine.store.forcing import force_rows
from workflows.inspector.selectors import (
    RunFilters,
    cursor_decode,
    cursor_encode,
    runs_filtered,
    runs_page,
    runs_touching,
)
from workflows.models import Run


def make_runs(flaky_workflow, live, n: int) -> list[Run]:
    runs = [
        factories.run_executed(flaky_workflow, customer=factories.customer(live)) for _ in range(n)
    ]
    # Same timestamp for some rows: the id breaks ties, so no row is skipped or repeated.
    same = timezone.now() - timedelta(hours=1)
    force_rows(Run.objects.filter(pk__in=[r.pk for r in runs[:3]])).update(created=same)
    return runs


def test_it_walks_every_run_once_page_by_page_newest_first(flaky_workflow, live):
    runs = make_runs(flaky_workflow, live, 7)
    seen: list[int] = []
    cursor = ""
    for _ in range(10):
        page = runs_page(environment=live, filters=RunFilters(), cursor=cursor, size=2)
        seen += [r.pk for r in page.runs]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(r.pk for r in runs)
    assert len(seen) == len(set(seen))
    expected = list(
        Run.objects.filter(environment=live)
        .order_by("-created", "-id")
        .values_list("pk", flat=True)
    )
    assert seen == expected


def test_it_round_trips_a_cursor_and_ignores_a_garbled_one(flaky_workflow, live):
    (run,) = make_runs(flaky_workflow, live, 1)
    assert cursor_decode(cursor_encode(run)) == (run.created, run.pk)
    assert cursor_decode("not-a-cursor!") is None
    page = runs_page(environment=live, filters=RunFilters(), cursor="garbage")
    assert [r.pk for r in page.runs] == [run.pk]


def test_it_filters_by_workflow_status_and_time(flaky_workflow, live, alice, flaky):
    failed = make_runs(flaky_workflow, live, 2)
    flaky["fail"] = False
    other = factories.workflow_active(live, factories.flaky_definition("Other"), alice)
    ok = factories.run_executed(other, customer=factories.customer(live))
    by_workflow = runs_filtered(environment=live, filters=RunFilters(workflow=other.pk))
    assert [r.pk for r in by_workflow] == [ok.pk]
    by_status = runs_filtered(environment=live, filters=RunFilters(status="failed"))
    assert sorted(r.pk for r in by_status) == sorted(r.pk for r in failed)
    recent = RunFilters(since=timezone.now() - timedelta(minutes=30))
    assert ok.pk in {r.pk for r in runs_filtered(environment=live, filters=recent)}
    old = RunFilters(until=timezone.now() - timedelta(days=1))
    assert not runs_filtered(environment=live, filters=old).exists()


def test_it_filters_by_event_type_and_event_id(live, alice):
    definition = {
        "name": "On customer",
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "tag",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {"a": "1"}},
            }
        ],
    }
    from django.test import TestCase

    factories.workflow_active(live, definition, alice)
    with TestCase.captureOnCommitCallbacks(execute=True):
        customer = factories.customer(live)
    run = Run.objects.get(environment=live)
    by_type = runs_filtered(environment=live, filters=RunFilters(event_type="customer.created"))
    assert [r.pk for r in by_type] == [run.pk]
    wrong = runs_filtered(environment=live, filters=RunFilters(event_type="invoice.paid"))
    assert not wrong.exists()
    by_event = runs_filtered(environment=live, filters=RunFilters(event_id=run.event_id))
    assert [r.pk for r in by_event] == [run.pk]
    # The object filter also finds runs through their trigger event's object.
    assert [r.pk for r in runs_touching(environment=live, object_id=customer.pk)] == [run.pk]


def test_it_finds_runs_by_the_object_they_changed(flaky_workflow, live):
    runs = make_runs(flaky_workflow, live, 3)
    target = runs[1].trigger["input"]["customer"]
    assert [r.pk for r in runs_touching(environment=live, object_id=target)] == [runs[1].pk]
    assert runs_touching(environment=live, object_id="cus_nothing") == []


def test_it_never_returns_another_environments_runs(flaky_workflow, live, sandbox, alice, flaky):
    (mine,) = make_runs(flaky_workflow, live, 1)
    theirs_wf = factories.workflow_active(sandbox, factories.flaky_definition("Sb"), alice)
    theirs = factories.run_executed(theirs_wf, customer=factories.customer(sandbox))
    page = runs_page(environment=live, filters=RunFilters())
    assert [r.pk for r in page.runs] == [mine.pk]
    target = theirs.trigger["input"]["customer"]
    assert runs_touching(environment=live, object_id=target) == []


def test_it_reads_filters_from_a_query_and_reports_bad_values():
    from django.http import QueryDict

    f = RunFilters.from_query(QueryDict("workflow=x&status=lost&since=yesterday&event_type=a.b"))
    assert f.workflow is None and f.status == "" and f.since is None
    assert set(f.errors) == {"workflow", "status", "since"}
    impossible = RunFilters.from_query(QueryDict("since=2026-13-45&until=2026-02-30T09:00"))
    assert set(impossible.errors) == {"since", "until"}  # well formed, but no such day
    assert f.event_type == "a.b"
    good = RunFilters.from_query(QueryDict("status=failed&since=2026-01-31"))
    assert good.status == "failed"
    assert good.since.isoformat().startswith("2026-01-31T00:00:00")
