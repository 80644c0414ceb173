"""Credits to a customer's balance (`customers.credit`) under the money guardrails, through the
real executor: a credit inside the cap moves the balance, one past it fails with `guardrail`
and moves nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from billing.models import Customer, CustomerBalanceTransaction
from tests import factories
from workflows.actions import registry
from workflows.actions.registry import ActionContext
from workflows.definition.validation import validate_definition
from workflows.engine.executor import run_execute
from workflows.engine.guardrails import day_bucket, total_of
from workflows.engine.runs import run_start_manual
from workflows.models import GuardrailTotal, Run, StepRun


def credits(guardrails: dict, amount=3000) -> dict:
    """A manual workflow crediting the customer it is given."""
    return {
        "name": "Goodwill credits",
        "trigger": {
            "type": "manual",
            "input": [{"name": "customer", "type": "string", "required": True}],
        },
        "steps": [
            {
                "id": "credit",
                "type": "action",
                "action": "customers.credit",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "amount": amount,
                    "currency": "usd",
                    "description": "Sorry for the outage",
                },
            }
        ],
        "guardrails": guardrails,
    }


def run_of(workflow, customer, user) -> Run:
    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=user)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def today(workflow) -> int:
    return total_of(workflow.pk, GuardrailTotal.Scope.DAY, day_bucket(timezone.now()), "usd")


def test_a_credit_inside_the_cap_credits_the_balance_and_the_next_past_it_fails(live, alice):
    workflow = factories.workflow_active(
        live, credits({"max_amount_per_day": {"usd": 5000}}), alice
    )
    first_customer = factories.customer(live)
    first = run_of(workflow, first_customer, alice)

    assert first.status == Run.Status.SUCCEEDED
    first_customer.refresh_from_db()
    assert (first_customer.balance, first_customer.currency) == (-3000, "usd")
    (entry,) = CustomerBalanceTransaction.objects.filter(customer=first_customer)
    assert (entry.amount, entry.description) == (-3000, "Sorry for the outage")
    assert today(workflow) == 3000

    second_customer = factories.customer(live)
    second = run_of(workflow, second_customer, alice)

    assert second.status == Run.Status.FAILED
    assert second.error["type"] == "guardrail"
    assert second.error["message"] == (
        "Guardrail max_amount_per_day (50.00 USD): step 'credit' (customers.credit) would move "
        "30.00 USD, bringing today's (UTC) total from 30.00 USD to 60.00 USD. Nothing was moved."
    )
    assert Customer.objects.get(pk=second_customer.pk).balance == 0
    assert not CustomerBalanceTransaction.objects.filter(customer=second_customer).exists()
    assert today(workflow) == 3000
    assert StepRun.objects.get(run=second, step_id="credit").status == StepRun.Status.FAILED


@pytest.mark.parametrize("amount", [0, -500])
def test_a_literal_credit_that_is_not_positive_is_refused_at_save_naming_amount(amount):
    problems = validate_definition(credits({"max_amount_per_day": {"usd": 5000}}, amount=amount))
    assert [(p.field, p.message) for p in problems] == [
        ("steps[0].params.amount", "The credit must be a positive amount, in the minor unit")
    ]


def test_the_credit_action_reports_its_change_and_a_dry_run_writes_nothing(live):
    customer = factories.customer(live)
    action = registry.get("customers.credit")
    params = {"customer": customer.pk, "amount": 700, "currency": "USD"}
    assert action.moves_money(None, params) == [("usd", 700)]

    mark = factories.event_mark()
    dry = ActionContext(environment=live, idempotency_key="1/credit/", dry_run=True)
    preview = action.execute(dry, params)
    assert (preview["object"], preview["amount"], preview["ending_balance"]) == (
        "customer_balance_transaction",
        -700,
        -700,
    )
    assert preview["dry_run"] is True
    assert factories.new_events(mark) == [] and dry.changed == []
    assert not CustomerBalanceTransaction.objects.exists()

    ctx = ActionContext(environment=live, idempotency_key="1/credit/")
    output = action.execute(ctx, params)
    assert set(output) == set(preview) - {"dry_run"}
    assert [(c["object"], c["id"]) for c in ctx.changed] == [
        ("customer_balance_transaction", output["id"]),
        ("customer", customer.pk),
    ]
    assert ctx.changed[1]["before"] == {"balance": 0, "currency": None}
    # The step's key makes a retry of the same step credit once.
    action.execute(ActionContext(environment=live, idempotency_key="1/credit/"), params)
    assert Customer.objects.get(pk=customer.pk).balance == -700
