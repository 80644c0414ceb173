"""Money guardrails through the real executor (in-process, the way a worker calls it), on
SQLite and PostgreSQL: refunds made by billing's services, reservations against the caps in
the step's transaction, a breach that fails the step with `guardrail` and moves nothing."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.models import Refund
from tests import factories
from tests.concurrency import race
from workflows.actions import registry
from workflows.actions.registry import Action, ActionError
from workflows.definition.guardrails import Caps
from workflows.engine.executor import run_execute
from workflows.engine.guardrails import day_bucket, guardrails_reserve, total_of
from workflows.engine.runs import run_restart, run_start_manual
from workflows.models import GuardrailTotal, Run, StepRun
from workflows.services import workflow_publish, workflow_update

Scope = GuardrailTotal.Scope


def refunds(guardrails: dict, amounts: tuple[int, ...] = (3000,)) -> dict:
    """A manual workflow refunding parts of one charge, one step per amount."""
    return {
        "name": "Goodwill refunds",
        "trigger": {
            "type": "manual",
            "input": [{"name": "charge", "type": "string", "required": True}],
        },
        "steps": [
            {
                "id": f"refund_{index}",
                "type": "action",
                "action": "refunds.create",
                "params": {"charge": "{{ trigger.input.charge }}", "amount": amount},
            }
            for index, amount in enumerate(amounts, start=1)
        ],
        "guardrails": guardrails,
    }


def run_of(workflow, charge, user) -> Run:
    run = run_start_manual(workflow=workflow, input={"charge": charge.pk}, user=user)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def today(workflow, currency: str = "usd") -> int:
    from django.utils import timezone

    return total_of(workflow.pk, Scope.DAY, day_bucket(timezone.now()), currency)


def test_a_refund_past_the_day_cap_fails_with_guardrail_and_moves_nothing(live, alice):
    workflow = factories.workflow_active(
        live, refunds({"max_amount_per_day": {"usd": 5000}}), alice
    )
    first = run_of(workflow, factories.paid_charge(live, amount=10000), alice)
    assert first.status == Run.Status.SUCCEEDED
    assert today(workflow) == 3000

    charge = factories.paid_charge(live, amount=10000)
    second = run_of(workflow, charge, alice)

    assert second.status == Run.Status.FAILED
    assert second.error["type"] == "guardrail"
    assert second.error["retryable"] is False
    assert second.error["message"] == (
        "Guardrail max_amount_per_day (50.00 USD): step 'refund_1' (refunds.create) would move "
        "30.00 USD, bringing today's (UTC) total from 30.00 USD to 60.00 USD. Nothing was moved."
    )
    assert not Refund.objects.filter(charge=charge).exists()
    assert today(workflow) == 3000  # the breach reserved nothing
    assert StepRun.objects.get(run=second, step_id="refund_1").status == StepRun.Status.FAILED


def test_the_run_cap_stops_the_second_refund_of_a_run_and_keeps_the_first(live, alice):
    workflow = factories.workflow_active(
        live, refunds({"max_amount_per_run": {"usd": 5000}}, amounts=(3000, 3000)), alice
    )
    charge = factories.paid_charge(live, amount=10000)
    run = run_of(workflow, charge, alice)

    assert run.status == Run.Status.FAILED
    assert (run.error["step"], run.error["type"]) == ("refund_2", "guardrail")
    assert "max_amount_per_run (50.00 USD)" in run.error["message"]
    assert "this run's total from 30.00 USD to 60.00 USD" in run.error["message"]
    assert [r.amount for r in Refund.objects.filter(charge=charge)] == [3000]
    assert total_of(workflow.pk, Scope.RUN, str(run.pk), "usd") == 3000


def test_runs_per_hour_counts_each_money_moving_run_once(live, alice):
    workflow = factories.workflow_active(
        live, refunds({"max_runs_per_hour": 2}, amounts=(1000, 1000)), alice
    )
    first = run_of(workflow, factories.paid_charge(live, amount=10000), alice)
    second = run_of(workflow, factories.paid_charge(live, amount=10000), alice)
    charge = factories.paid_charge(live, amount=10000)
    third = run_of(workflow, charge, alice)

    # Two steps each, counted once per run: the first two runs fit, the third does not.
    assert (first.status, second.status) == (Run.Status.SUCCEEDED, Run.Status.SUCCEEDED)
    assert third.status == Run.Status.FAILED
    assert third.error["type"] == "guardrail"
    assert "max_runs_per_hour (2)" in third.error["message"]
    assert "from 2 to 3" in third.error["message"]
    assert not Refund.objects.filter(charge=charge).exists()


def test_a_failed_step_s_reservation_rolls_back_and_a_restart_after_the_fix_counts_once(
    live, alice, mona
):
    # Refunding more than the charge fails in billing, after the reservation: both roll back.
    workflow = factories.workflow_active(
        live, refunds({"max_amount_per_day": {"usd": 5000}}, amounts=(4000,)), alice
    )
    charge = factories.paid_charge(live, amount=2000)
    run = run_of(workflow, charge, alice)
    assert run.status == Run.Status.FAILED
    assert run.error["type"] != "guardrail"
    assert today(workflow) == 0

    # The fix: refund what the charge holds; the restart runs on the new version.
    workflow_update(
        workflow=workflow,
        definition=refunds({"max_amount_per_day": {"usd": 5000}}, amounts=(2000,)),
        updated_by=mona,
    )
    workflow_publish(workflow=workflow, published_by=mona)
    run_restart(run=run, user=mona, mode="latest_version")
    run_execute(run_id=run.pk)
    run.refresh_from_db()

    assert run.status == Run.Status.SUCCEEDED
    assert [r.amount for r in Refund.objects.filter(charge=charge)] == [2000]
    assert today(workflow) == 2000


def test_a_non_transactional_step_retried_is_counted_once(live, alice):
    calls: list[str] = []

    def execute(ctx, params):
        calls.append(ctx.idempotency_key)
        if len(calls) == 1:
            raise ActionError("The payout service is busy.", type="busy", retryable=True)
        return {"paid": params["amount"]}

    registry.register(
        Action(
            key="tests.payout",
            label="Pay out",
            execute=execute,
            transactional=False,
            inputs=(registry.InputField("amount", "integer", required=True),),
            moves_money=lambda ctx, params: [("eur", params["amount"])],
        ),
        replace=True,
    )
    try:
        definition = {
            "name": "Payout",
            "trigger": {"type": "manual", "input": []},
            "steps": [
                {"id": "pay", "type": "action", "action": "tests.payout", "params": {"amount": 700}}
            ],
            "guardrails": {"max_amount_per_day": {"eur": 1000}},
        }
        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        run_execute(run_id=run.pk)
        run.refresh_from_db()
    finally:
        registry.unregister("tests.payout")

    assert run.status == Run.Status.SUCCEEDED
    assert len(calls) == 2  # retried once
    assert today(workflow, "eur") == 700  # reserved once, under the step's key


@pytest.mark.postgres
def test_two_transactions_racing_for_the_last_unit_of_a_cap_reserve_it_once(
    transactional_db, live, alice
):
    workflow = factories.workflow_active(
        live, refunds({"max_amount_per_day": {"usd": 5000}}), alice
    )
    caps = Caps(per_day={"usd": 5000})
    guardrails_reserve(
        caps=caps, workflow_id=workflow.pk, run_id=1, amounts=[("usd", 4000)], what="setup"
    )

    def reserve(run_id: int):
        def call():
            with transaction.atomic():
                guardrails_reserve(
                    caps=caps,
                    workflow_id=workflow.pk,
                    run_id=run_id,
                    amounts=[("usd", 1000)],
                    what=f"run {run_id}",
                )
                # Hold the transaction open so the rival's upsert meets our row lock.
                import time

                time.sleep(0.3)
            return "reserved"

        return call

    counter = iter((2, 3))
    results = race(2, lambda: reserve(next(counter))())

    assert sorted(map(type, results), key=str) == sorted([str, ActionError], key=str)
    breach = next(r for r in results if isinstance(r, ActionError))
    assert breach.type == "guardrail"
    assert "from 50.00 USD to 60.00 USD" in breach.message
    assert today(workflow) == 5000


def test_a_test_run_stops_where_a_run_would_pass_a_guardrail_and_reserves_nothing(live, alice):
    from workflows.builder.test_run import workflow_test_run

    definition = refunds({"max_amount_per_run": {"usd": 5000}}, amounts=(3000, 3000))
    workflow = factories.workflow_active(live, definition, alice)
    charge = factories.paid_charge(live, amount=10000)

    result = workflow_test_run(
        workflow_id=workflow.pk,
        definition=definition,
        trigger={"input": {"charge": charge.pk}},
        environment=live,
    )

    assert result.status == "failed"
    assert result.steps["refund_1"]["status"] == "simulated"
    assert (result.error["step"], result.error["type"]) == ("refund_2", "guardrail")
    assert "this run's total from 30.00 USD to 60.00 USD" in result.error["message"]
    assert not Refund.objects.filter(charge=charge).exists()
    assert not GuardrailTotal.objects.filter(workflow=workflow).exists()
