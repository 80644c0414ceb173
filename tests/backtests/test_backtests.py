"""Backtests replay stored events through the engine's walk in recording mode: the dispatcher's
trigger match, the same paths and steps as runs, the money refunds would move, nothing written
to billing, and each event counted once across a worker that stopped mid-chunk.

The job (`backtest_apply`) is called here as the worker's task calls it; the workers:
tests/backtests/test_backtests_workers.py.
"""

from __future__ import annotations

from billing import services as billing
from billing.models import Customer, Event
from tests import factories
from workflows.backtests.jobs import backtest_apply, backtest_create
from workflows.backtests.requests import check_request
from workflows.engine.executor import run_execute
from workflows.models import Backtest, Run, StepRun


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
