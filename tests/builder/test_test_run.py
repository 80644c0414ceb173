"""The builder's test run is the executor's walk with another policy: it agrees with real runs.

A test run checks the trigger the way the dispatcher does, applies the same loop caps, and for
any valid definition and event takes the same path, makes the same decisions and stops at the
same step with the same error as a real run executed by the executor (SQLite and PostgreSQL).
"""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.test import TestCase
from hypothesis import HealthCheck, given
from hypothesis import event as tally
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing import services as billing
from billing.events import event_envelope
from billing.models import Event
from tests import factories
from tests.engine.test_engine_executor import drain, loop_definition, subscriptions_for
from workflows.actions import registry
from workflows.actions.registry import Action, ActionError, InputField
from workflows.builder.test_run import NOT_TRIGGERED, workflow_test_run
from workflows.engine.conditions import explain
from workflows.engine.runs import run_start_manual
from workflows.models import Run, StepRun

HX = {"HTTP_HX_REQUEST": "true"}

HUGE_PAYMENTS = {
    "name": "Huge payment alert",
    "trigger": {
        "type": "event",
        "event": "payment_intent.succeeded",
        "accounts": "platform",
        "conditions": {
            "all": [
                {"field": "trigger.data.object.currency", "op": "eq", "value": "usd"},
                {"field": "trigger.data.object.amount", "op": "gt", "value": 999999999},
            ]
        },
    },
    "steps": [
        {
            "id": "tell_finance",
            "type": "action",
            "action": "team.email",
            "params": {"recipients": ["mona"], "subject": "Huge payment", "body": "Look."},
        }
    ],
}


def nested_loops() -> dict:
    """Three subscriptions, a loop over them holding the same loop: 3 + 3 x 3 iterations."""
    outer = loop_definition(page_size=10)
    inner = {**outer["steps"][0], "id": "again"}
    outer["steps"][0]["steps"] = [inner]
    return outer


def run_error(error: dict | None) -> tuple | None:
    if error is None:
        return None
    return (error["step"], error["iteration"], error["type"], error["message"])


# --- the trigger ---------------------------------------------------------------------------------


def test_it_explains_why_an_event_would_not_start_the_workflow(client, mona, live):
    workflow = factories.workflow_active(live, HUGE_PAYMENTS)
    factories.paid_charge(live, amount=150000, currency="usd")  # 1,500.00 USD
    event = Event.objects.get(type="payment_intent.succeeded")
    assert not Run.objects.filter(workflow=workflow).exists()  # the dispatcher did not match
    client.force_login(mona)

    response = client.post(f"/admin/workflows/{workflow.pk}/test/", {"event": event.id}, **HX)

    body = response.content.decode()
    assert "Dry run: not started" in body
    assert "amount 150000 is not greater than 999999999" in body
    assert "wf-status-simulated" not in body  # the e-mail step was not walked
    result = workflow_test_run(
        workflow_id=workflow.pk,
        definition=HUGE_PAYMENTS,
        trigger=event_envelope(event),
        environment=live,
    )
    assert result.status == NOT_TRIGGERED
    assert result.steps == {} and result.path == []


def test_the_canvas_stays_in_edit_mode_after_a_test_run(client, mona, live):
    definition = factories.region_workflow_definition()
    workflow = factories.workflow_active(live, definition)
    customer = factories.customer(live, address={"country": "DE"})
    event = Event.objects.get(object_id=customer.pk, type="customer.created")
    client.force_login(mona)

    response = client.post(f"/admin/workflows/{workflow.pk}/test/", {"event": event.id}, **HX)

    body = response.content.decode()
    assert "Dry run: succeeded" in body
    assert 'wf-status-simulated wf-taken" id="wf-node-tag_eu"' in body  # the results, drawn
    assert 'class="wf-canvas wf-canvas-editable"' in body
    assert body.count('class="wf-add"') >= 4  # every insertion point is still there


def test_it_walks_an_event_that_satisfies_the_trigger(live):
    factories.paid_charge(live, amount=150000, currency="usd")
    event = Event.objects.get(type="payment_intent.succeeded")
    definition = {**HUGE_PAYMENTS, "trigger": {**HUGE_PAYMENTS["trigger"], "conditions": None}}
    result = workflow_test_run(
        workflow_id=None, definition=definition, trigger=event_envelope(event), environment=live
    )
    assert result.status == "succeeded"
    assert result.steps["tell_finance"]["status"] == "simulated"


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"field": "trigger.data.object.amount", "op": "gt", "value": 999}, None),
        (
            {"field": "trigger.data.object.currency", "op": "in", "value": ["eur", "gbp"]},
            'currency "usd" is not one of ["eur", "gbp"]',
        ),
        (
            {"field": "trigger.data.object.amount", "op": "lt", "value": "100"},
            'amount 1500 is not less than "100" (values of different kinds never compare)',
        ),
        (
            {"field": "trigger.data.object.coupon", "op": "eq", "value": "x"},
            "coupon is missing (a missing field satisfies no comparison)",
        ),
        (
            {
                "any": [
                    {"field": "trigger.data.object.amount", "op": "gte", "value": 2000},
                    {"field": "trigger.data.object.customer", "op": "exists"},
                ]
            },
            "none holds: amount 1500 is not at least 2000; customer is null",
        ),
    ],
)
def test_it_explains_a_false_condition_naming_field_operator_and_values(condition, reason):
    context = {
        "trigger": {"data": {"object": {"amount": 1500, "currency": "usd", "customer": None}}}
    }
    assert explain(condition, context) == reason


# --- the run's total iteration cap ---------------------------------------------------------------


def test_it_fails_a_nested_loop_over_the_runs_iteration_cap_as_the_executor_does(
    live, alice, settings
):
    settings.BILLFLOW = {**settings.BILLFLOW, "RUN_MAX_ITERATIONS": 8}
    customer = factories.customer(live)
    subscriptions_for(live, customer, 3)
    workflow = factories.workflow_active(live, nested_loops(), alice)

    result = workflow_test_run(
        workflow_id=workflow.pk,
        definition=nested_loops(),
        trigger={"input": {"customer": customer.pk}},
        environment=live,
    )
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    drain()
    run.refresh_from_db()

    assert result.status == run.status == Run.Status.FAILED
    assert run_error(result.error)[:3] == ("again", "1", "run_iteration_cap")
    assert run_error(result.error) == run_error(run.error)
    assert result.stop_reason == run.stop_reason
    assert result.path == run.path


@pytest.mark.postgres
@pytest.mark.workers
def test_a_test_run_agrees_with_a_run_executed_by_qcluster_workers(
    transactional_db, live, alice, settings
):
    from tests.engine.test_engine_workers import all_finished
    from tests.workers import qclusters, wait_for

    settings.BILLFLOW = {**settings.BILLFLOW, "RUN_MAX_ITERATIONS": 8}
    customer = factories.customer(live)
    subscriptions_for(live, customer, 3)
    workflow = factories.workflow_active(live, nested_loops(), alice)
    result = workflow_test_run(
        workflow_id=workflow.pk,
        definition=nested_loops(),
        trigger={"input": {"customer": customer.pk}},
        environment=live,
    )

    with qclusters(count=1, workers=1, env={"BILLFLOW_RUN_MAX_ITERATIONS": "8"}):
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        wait_for(all_finished(1), timeout=45)

    run.refresh_from_db()
    assert run.status == result.status == Run.Status.FAILED
    assert run_error(run.error) == run_error(result.error)
    assert run_error(run.error)[:3] == ("again", "1", "run_iteration_cap")
    assert run.path == result.path
    walked = {r.step_id for r in StepRun.objects.filter(run=run)}
    assert walked == set(result.steps) == {"each_subscription", "mark", "again"}


# --- the property: a test run and a real run agree --------------------------------------------


def _echo(ctx, params: dict) -> dict:
    if params.get("fail"):
        raise ActionError(f"Echo refused n={params.get('n')}.", type="refused")
    size = int(params.get("size") or 0)
    n = params.get("n")
    return {"n": n, "even": isinstance(n, int) and n % 2 == 0, "size": size}


def _pages(ctx, params: dict) -> dict:
    count, limit = int(params.get("count") or 0), int(params.get("limit") or 10)
    start = 0
    if params.get("starting_after"):
        start = int(str(params["starting_after"])[1:]) + 1
    data = [{"id": f"p{i}", "i": i} for i in range(start, min(count, start + limit))]
    return {"object": "list", "data": data, "has_more": start + limit < count}


ECHO = Action(
    key="tests.echo",
    label="Echo",
    execute=_echo,
    inputs=(
        InputField("n", "integer"),
        InputField("size", "integer"),
        InputField("fail", "boolean"),
    ),
    output={"n": 1, "even": False, "size": 0},
    side_effects=False,
)
PAGES = Action(
    key="tests.pages",
    label="Pages",
    execute=_pages,
    inputs=(
        InputField("count", "integer"),
        InputField("limit", "integer"),
        InputField("starting_after", "string"),
    ),
    output={"object": "list", "data": [{"id": "p0", "i": 0}], "has_more": False},
    side_effects=False,
    is_list_source=True,
)


@pytest.fixture
def vocabulary():
    for action in (ECHO, PAGES):
        registry.register(action, replace=True)
    yield
    for action in (ECHO, PAGES):
        registry.unregister(action.key)


AMOUNT = "trigger.data.object.amount"


@st.composite
def definitions(draw) -> dict:
    """Valid definitions over conditions, branches, loops (nested), echo and pages."""
    counter = iter(range(1000))
    budget, reserved = [10], [1]

    def leaf(in_loop: bool, earlier: list[str]) -> dict:
        choices = (
            ["amount", "currency"] + (["item"] if in_loop else []) + (["echo"] if earlier else [])
        )
        kind = draw(st.sampled_from(choices))
        if kind == "amount":
            op = draw(st.sampled_from(["gt", "lt", "gte", "eq"]))
            return {"field": AMOUNT, "op": op, "value": draw(st.integers(0, 3000))}
        if kind == "currency":
            return {"field": "trigger.data.object.currency", "op": "eq", "value": "usd"}
        if kind == "item":
            return {"field": "item.i", "op": "lt", "value": draw(st.integers(0, 3))}
        source = draw(st.sampled_from(earlier))
        return {"field": f"steps.{source}.output.even", "op": "eq", "value": True}

    def steps(depth: int, in_loop: bool, earlier: list[str]) -> list[dict]:
        """A list of steps, at least one: the caller reserved a unit of the budget for it."""
        out = []
        reserved[0] -= 1
        for _ in range(draw(st.integers(1, 3))):
            if budget[0] - reserved[0] <= 0:  # 12 steps at most, nested ones included
                break
            budget[0] -= 1
            free = budget[0] - reserved[0]
            step_id = f"s{next(counter)}"
            kinds = ["action", "condition"] + (["branch", "foreach"] if depth and free else [])
            kind = draw(st.sampled_from(kinds))
            if kind == "action":
                n = draw(st.sampled_from([7, 8, "{{ trigger.data.object.amount }}"]))
                if in_loop and draw(st.booleans()):
                    n = "{{ item.i }}"
                params = {"n": n, "size": draw(st.integers(0, 3))}
                if draw(st.integers(0, 9)) == 0:
                    params["fail"] = True
                step = {"id": step_id, "type": "action", "action": "tests.echo", "params": params}
                earlier = [*earlier, step_id]
            elif kind == "condition":
                step = {"id": step_id, "type": "condition", "condition": leaf(in_loop, earlier)}
            elif kind == "branch":
                paths = []
                count = draw(st.integers(1, min(3, free)))
                reserved[0] += count  # every path holds a step
                for index in range(count):
                    last = index == count - 1
                    when = None if last and draw(st.booleans()) else leaf(in_loop, earlier)
                    body = steps(depth - 1, in_loop, earlier)
                    paths.append({"name": f"p{index}", "when": when, "steps": body})
                step = {"id": step_id, "type": "branch", "paths": paths}
            else:
                reserved[0] += 1  # a loop's body holds a step
                step = {
                    "id": step_id,
                    "type": "foreach",
                    "action": "tests.pages",
                    "params": {"count": draw(st.integers(0, 5)), "limit": draw(st.integers(1, 3))},
                    "steps": steps(depth - 1, True, earlier),
                }
                if draw(st.booleans()):
                    step["max_items"] = draw(st.integers(1, 5))
            out.append(step)
        return out

    conditions = None
    if draw(st.booleans()):
        conditions = {"field": AMOUNT, "op": "gt", "value": draw(st.integers(0, 3000))}
    return {
        "name": "Generated",
        "trigger": {
            "type": "event",
            "event": "payment_intent.created",
            "accounts": "platform",
            "conditions": conditions,
        },
        "steps": steps(2, False, []),  # uses the one unit reserved above
    }


class _Undo(Exception):
    pass


@pytest.mark.usefixtures("vocabulary")
@hypothesis_settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    definition=definitions(),
    amount=st.integers(1, 3000),
    currency=st.sampled_from(["usd", "eur"]),
)
def test_a_test_run_and_a_real_run_in_a_sandbox_take_the_same_path(
    sandbox, settings, definition, amount, currency
):
    settings.BILLFLOW = {**settings.BILLFLOW, "RUN_MAX_ITERATIONS": 5}
    try:
        with transaction.atomic():  # each example leaves nothing behind for the next
            workflow = factories.workflow_active(sandbox, definition)
            with TestCase.captureOnCommitCallbacks(execute=True):
                intent = billing.payment_intent_create(
                    environment=sandbox, amount=amount, currency=currency
                )
            event = Event.objects.get(type="payment_intent.created", object_id=intent.pk)
            result = workflow_test_run(
                workflow_id=workflow.pk,
                definition=definition,
                trigger=event_envelope(event),
                environment=sandbox,
            )
            run = Run.objects.filter(workflow=workflow, event=event).first()
            # Shown by --hypothesis-show-statistics: how the generated walks ended.
            condition_stop = result.status == "succeeded" and result.stop_why
            ended = (result.error or {}).get("type") or ("at a condition" if condition_stop else "")
            tally(f"{result.status} {ended}".strip())
            if run is None:  # the dispatcher did not start it: the test run says why
                assert result.status == NOT_TRIGGERED
                assert re.match(r"amount \d+ is not greater than \d+", result.stop_why)
                raise _Undo
            drain()
            run.refresh_from_db()
            assert result.status == run.status
            assert result.path == run.path
            assert run_error(result.error) == run_error(run.error)
            assert result.stop_reason == run.stop_reason
            # Every step walked, and each one's last iteration, ended the same way.
            walked = {(r.step_id, r.iteration): r.status for r in StepRun.objects.filter(run=run)}
            assert set(result.steps) == {step_id for step_id, _ in walked}
            for step_id, entry in result.steps.items():
                assert walked[(step_id, entry["iteration"])] == entry["status"], step_id
            raise _Undo
    except _Undo:
        pass
