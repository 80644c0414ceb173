"""Backtests replay stored events through the engine's walk in recording mode: the dispatcher's
trigger match, the same paths and steps as runs, the money refunds would move, nothing written
to billing, and each event counted once across a worker that stopped mid-chunk.

The job (`backtest_apply`) is called here as the worker's task calls it; the workers:
tests/backtests/test_backtests_workers.py.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import services as billing
from billing.models import Charge, Customer, Event, IdempotencyRecord, Refund
from tests import factories
from workflows.backtests.jobs import _chunk, backtest_apply, backtest_create, backtests_resume
from workflows.backtests.recording import path_keys
from workflows.backtests.requests import BacktestRequestError, check_request
from workflows.engine.executor import run_execute
from workflows.models import Backtest, Run, StepRun
from workflows.services import workflow_update


def segment_workflow_definition(name: str = "Trial customers by region") -> dict:
    """customer.created of the "trial" segment; stop unless the customer has an e-mail; then
    by country: North America and everyone else read the customer, Europe tags it."""

    def country_in(*codes: str) -> dict:
        return {
            "all": [
                {"field": "trigger.data.object.address.country", "op": "in", "value": list(codes)}
            ]
        }

    def step(step_id: str, action: str, **params: object) -> dict:
        params = {"customer": "{{ trigger.data.object.id }}", **params}
        return {"id": step_id, "type": "action", "action": action, "params": params}

    return {
        "name": name,
        "trigger": {
            "type": "event",
            "event": "customer.created",
            "accounts": "platform",
            "conditions": {
                "all": [
                    {"field": "trigger.data.object.metadata.segment", "op": "eq", "value": "trial"}
                ]
            },
        },
        "steps": [
            {
                "id": "has_email",
                "type": "condition",
                "condition": {
                    "all": [{"field": "trigger.data.object.email", "op": "contains", "value": "@"}]
                },
            },
            {
                "id": "region",
                "type": "branch",
                "paths": [
                    {
                        "name": "North America",
                        "when": country_in("US", "CA"),
                        "steps": [step("look_na", "customers.retrieve")],
                    },
                    {
                        "name": "Europe",
                        "when": country_in("FR", "DE"),
                        "steps": [step("tag_eu", "customers.update", metadata={"eu": "yes"})],
                    },
                    {
                        "name": "Everyone else",
                        "when": None,
                        "steps": [step("look_other", "customers.retrieve")],
                    },
                ],
            },
        ],
    }


COUNTRIES = ["US", "FR", "BR", "CA", "DE"]


def make_customer(environment, i: int, *, trial_every: int = 3) -> Customer:
    """The i-th customer of a mix: every `trial_every`th in the trial segment, every seventh
    without an e-mail; the countries change every `trial_every` customers, so the trial ones
    take turns too."""
    return billing.customer_create(
        environment=environment,
        email="" if i % 7 == 0 else f"c{i}@example.com",
        address={"country": COUNTRIES[i // trial_every % len(COUNTRIES)]},
        metadata={"segment": "trial" if i % trial_every == 0 else "paid"},
    )


def runs_report(workflow) -> dict:
    """What the real runs of `workflow` did, in a backtest's terms."""
    records = StepRun.objects.filter(run__workflow=workflow)
    paths: dict[str, int] = {}
    ran: dict[str, int] = {}
    for rec in records:
        if rec.status == StepRun.Status.SUCCEEDED:
            ran[rec.step_id] = ran.get(rec.step_id, 0) + 1
        if rec.step_id == "region":
            paths[rec.branch_chosen] = paths.get(rec.branch_chosen, 0) + 1
        if rec.step_id == "has_email" and rec.output == {"result": False}:
            paths["stopped at has_email"] = paths.get("stopped at has_email", 0) + 1
    return {
        "would_start": Run.objects.filter(workflow=workflow).count(),
        "paths": paths,
        "would_run": ran,
    }


def backtest_report(backtest: Backtest) -> dict:
    return {
        "would_start": backtest.would_start,
        "paths": backtest.paths,
        "would_run": {k: v["would_run"] for k, v in backtest.steps.items() if v["would_run"]},
    }


def start(workflow, **asked) -> Backtest:
    request = check_request(workflow, **asked)
    return backtest_create(
        workflow=workflow,
        definition=request.definition,
        version_number=request.version_number,
        since=request.since,
        until=request.until,
        enqueue=False,
    )


def test_a_backtest_counts_what_real_runs_of_the_same_version_did(live, alice):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    for i in range(30):
        make_customer(live, i)
    for run in Run.objects.filter(workflow=workflow):
        run_execute(run_id=run.pk)
    assert Run.objects.filter(workflow=workflow, status=Run.Status.SUCCEEDED).count() == 10

    backtest = start(workflow)
    assert backtest_apply(backtest_id=backtest.pk, chunk=7, continue_with=None) == "done"
    backtest.refresh_from_db()
    assert (backtest.events_total, backtest.events_scanned) == (30, 30)
    assert backtest_report(backtest) == runs_report(workflow)
    assert backtest.version_number == 1 and backtest.finished_at is not None
    # Up to five samples per route, each naming its event and the steps it would run.
    routes = {s["route"] for s in backtest.samples}
    assert routes == {"stopped at has_email", "North America", "Europe", "Everyone else"}
    europe = next(s for s in backtest.samples if s["route"] == "Europe")
    assert europe["steps"] == ["has_email", "region", "tag_eu"]
    assert Event.objects.filter(pk=europe["event"], type="customer.created").exists()


def refund_workflow_definition() -> dict:
    """Each succeeded charge refunded: dollars in full, euros 5.00 of it."""

    def refund(step_id: str, **params: object) -> dict:
        params = {"charge": "{{ trigger.data.object.id }}", **params}
        return {"id": step_id, "type": "action", "action": "refunds.create", "params": params}

    currency_is = lambda code: {  # noqa: E731
        "all": [{"field": "trigger.data.object.currency", "op": "eq", "value": code}]
    }
    return {
        "name": "Refund everything",
        "trigger": {"type": "event", "event": "charge.succeeded", "accounts": "platform"},
        "steps": [
            {
                "id": "by_currency",
                "type": "branch",
                "paths": [
                    {
                        "name": "Dollars",
                        "when": currency_is("usd"),
                        "steps": [refund("refund_all")],
                    },
                    {
                        "name": "Euros",
                        "when": currency_is("eur"),
                        "steps": [refund("refund_part", amount=500)],
                    },
                ],
            }
        ],
    }


def billing_rows() -> dict:
    return {
        "events": Event.objects.count(),
        "refunds": Refund.objects.count(),
        "refunded": sorted(Charge.objects.values_list("amount_refunded", flat=True)),
        "idempotency": IdempotencyRecord.objects.count(),
    }


def test_refund_amounts_are_added_up_per_currency_and_nothing_is_written(live, alice):
    workflow = factories.WorkflowFactory(
        environment=live, definition=refund_workflow_definition(), created_by=alice, activate=False
    )
    workflow.refresh_from_db()  # published, not active: no run refunds for real
    for amount in (1000, 2500, 4000):
        factories.paid_charge(live, amount=amount, currency="usd")
    for amount in (3000, 7000):
        factories.paid_charge(live, amount=amount, currency="eur")
    before = billing_rows()

    backtest = start(workflow, version="published")
    backtest_apply(backtest_id=backtest.pk, continue_with=None)
    backtest.refresh_from_db()

    assert billing_rows() == before  # no refund, no event, no key: nothing written
    assert (backtest.status, backtest.would_start) == ("done", 5)
    assert backtest.paths == {"Dollars": 3, "Euros": 2}
    assert backtest.steps == {
        "by_currency": {"would_run": 5, "amounts": {}},
        "refund_all": {"would_run": 3, "amounts": {"usd": 1000 + 2500 + 4000}},
        "refund_part": {"would_run": 2, "amounts": {"eur": 500 + 500}},
    }


def test_a_worker_stopped_mid_backtest_is_resumed_and_counts_every_event_once(live, alice):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    for i in range(30):
        make_customer(live, i)
    backtest = start(workflow)
    # The first worker counts two chunks of 7, then its time is up and its continuation is lost
    # (the worker died): the backtest stays running, its heartbeat going stale.
    assert backtest_apply(backtest_id=backtest.pk, chunk=7, budget=0, continue_with=None) == (
        "continued"
    )
    backtest.refresh_from_db()
    assert (backtest.status, backtest.events_scanned) == ("running", 7)
    assert backtests_resume() == 0  # fresh heartbeat: still someone's
    Backtest.objects.filter(pk=backtest.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5),
        created=timezone.now() - timedelta(minutes=5),
    )
    with django_q_tasks() as queued:
        assert backtests_resume() == 1
    assert queued == [("workflows.tasks.backtest_apply", backtest.pk)]
    # A chunk a dead worker replayed but never committed is not counted: the next worker starts
    # at the cursor, and a duplicate worker starting from an old cursor drops its chunk.
    stale = Backtest.objects.get(pk=backtest.pk)
    assert backtest_apply(backtest_id=backtest.pk, chunk=7, continue_with=None) == "done"
    assert _chunk(stale, path_keys(stale.definition), 7) is False  # the backtest is done
    backtest.refresh_from_db()
    assert (backtest.events_total, backtest.events_scanned) == (30, 30)
    for run in Run.objects.filter(workflow=workflow):
        run_execute(run_id=run.pk)
    assert backtest_report(backtest) == runs_report(workflow)


def test_a_chunk_counted_by_another_worker_meanwhile_is_dropped(live, alice):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    for i in range(12):
        make_customer(live, i)
    backtest = start(workflow)
    backtest_apply(backtest_id=backtest.pk, chunk=5, budget=0, continue_with=None)
    rival = Backtest.objects.get(pk=backtest.pk)  # a second worker, at the same cursor
    mine = Backtest.objects.get(pk=backtest.pk)
    keys = path_keys(mine.definition)
    assert _chunk(mine, keys, 5) is True
    assert _chunk(rival, keys, 5) is True  # replayed, found the cursor moved: counts nothing
    assert (rival.events_scanned, rival.cursor_event) == (10, mine.cursor_event)
    backtest_apply(backtest_id=backtest.pk, chunk=5, continue_with=None)
    backtest.refresh_from_db()
    assert (backtest.status, backtest.events_scanned, backtest.would_start) == ("done", 12, 4)


@contextlib.contextmanager
def django_q_tasks():
    """The tasks enqueued inside, as (function path, first argument), read from the broker."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    broker.purge_queue()
    queued: list = []
    yield queued
    while (task := broker.dequeue()) is not None:
        for ack_id, package in task:
            body = SignedPackage.loads(package)
            queued.append((body["func"], body["args"][0]))
            broker.acknowledge(ack_id)


@pytest.mark.parametrize(
    "asked, param, words",
    [
        ({"since": "yesterday"}, "since", "must be a Unix time in seconds or an ISO 8601"),
        ({"until": "2026-01-01T00:00:00"}, "until", "with a time zone"),
        ({"since": 1_790_000_000, "until": 1_780_000_000}, "until", "must be after `since`"),
        ({"since": 2_000_000_000}, "since", "is in the future"),
        ({"version": "latest"}, "version", 'must be "draft", "published" or a version number'),
        ({"version": 7}, "version", "No such version: 7"),
        ({"version": "draft"}, "version", "has no draft"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(live, alice, asked, param, words):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    with pytest.raises(BacktestRequestError) as refused:
        check_request(workflow, **asked)
    assert refused.value.param == param and words in refused.value.message


def test_a_range_past_the_event_retention_window_is_refused_naming_since(live, alice, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "EVENT_RETENTION_DAYS": 10}
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    with pytest.raises(BacktestRequestError) as refused:
        check_request(workflow)  # the default range is 30 days
    assert refused.value.param == "since"
    assert "before the events' retention window: events are kept 10 days" in str(refused.value)
    asked = check_request(workflow, since=int(time.time()) - 9 * 86400)
    assert (asked.until - asked.since).days == 9


def test_the_default_is_the_draft_over_the_last_30_days(live, alice):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    assert check_request(workflow).version_number == 1  # no draft: the published version
    changed = segment_workflow_definition("Changed")
    workflow_update(workflow=workflow, definition=changed)
    workflow.refresh_from_db()
    asked = check_request(workflow)
    assert (asked.version_number, asked.definition["name"]) == (None, "Changed")
    assert (asked.until - asked.since) == timedelta(days=30)
    assert check_request(workflow, version="published").version_number == 1
    assert check_request(workflow, version=1).definition["name"] == "Trial customers by region"


def test_path_names_shared_by_two_branches_are_prefixed_with_the_branch_id():
    definition = {
        "steps": [
            {"id": "a", "type": "branch", "paths": [{"name": "yes"}, {"name": "only a"}]},
            {"id": "b", "type": "branch", "paths": [{"name": "yes"}]},
        ]
    }
    assert path_keys(definition) == {
        "a": {None: "a/no path", "yes": "a/yes", "only a": "only a"},
        "b": {None: "b/no path", "yes": "b/yes"},
    }


def test_each_loop_iteration_counts_and_adds_its_amount(live, alice):
    """A loop over the customer's charges refunding 1.00 of each: read as billing is now."""
    definition = {
        "name": "Refund a dollar of every charge",
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "each_charge",
                "type": "foreach",
                "action": "charges.list",
                "params": {"customer": "{{ trigger.data.object.id }}"},
                "steps": [
                    {
                        "id": "refund",
                        "type": "action",
                        "action": "refunds.create",
                        "params": {"charge": "{{ item.id }}", "amount": 100},
                    }
                ],
            }
        ],
    }
    workflow = factories.WorkflowFactory(
        environment=live, definition=definition, created_by=alice, activate=False
    )
    workflow.refresh_from_db()
    two, one = factories.customer(live), factories.customer(live)
    for customer in (two, two, one):
        factories.paid_charge(live, customer=customer)
    before = billing_rows()
    backtest = start(workflow)
    backtest_apply(backtest_id=backtest.pk, continue_with=None)
    backtest.refresh_from_db()
    assert billing_rows() == before
    assert backtest.steps == {
        "each_charge": {"would_run": 2, "amounts": {}},
        "refund": {"would_run": 3, "amounts": {"usd": 300}},
    }
    assert backtest.paths == {}
    assert {s["route"] for s in backtest.samples} == {"straight through"}


def test_delays_and_approvals_are_counted_and_not_waited_for(live, alice):
    """A dunning-like flow: wait, ask, refund. The backtest goes through both as a test run
    does (the approval as if approved) and counts each step of each accepted event."""
    definition = {
        "name": "Refund after a wait and an approval",
        "trigger": {"type": "event", "event": "charge.succeeded", "accounts": "platform"},
        "steps": [
            {"id": "wait", "type": "delay", "seconds": 259200},
            {
                "id": "ok",
                "type": "approval",
                "approvers": ["account_manager"],
                "message": "Refund {{ trigger.data.object.id }}?",
                "timeout_hours": 48,
                "on_timeout": "reject",
            },
            {
                "id": "refund",
                "type": "action",
                "action": "refunds.create",
                "params": {"charge": "{{ trigger.data.object.id }}", "amount": 250},
            },
        ],
    }
    workflow = factories.WorkflowFactory(
        environment=live, definition=definition, created_by=alice, activate=False
    )
    workflow.refresh_from_db()
    for _ in range(3):
        factories.paid_charge(live, customer=factories.customer(live))
    before = billing_rows()
    backtest = start(workflow)
    backtest_apply(backtest_id=backtest.pk, continue_with=None)
    backtest.refresh_from_db()
    assert billing_rows() == before
    assert backtest.would_start == 3
    assert backtest.steps == {
        "wait": {"would_run": 3, "amounts": {}},
        "ok": {"would_run": 3, "amounts": {}},
        "refund": {"would_run": 3, "amounts": {"usd": 750}},
    }
