"""A transient payment-provider failure inside a billing step is retried until it succeeds."""

from __future__ import annotations

import pytest

from billing import services as billing
from billing.models import Invoice
from tests import factories
from tests.engine.test_engine_executor import drain
from workflows.engine.runs import run_start_manual
from workflows.models import Run, StepRun

PAY_INVOICE = {
    "name": "Collect an invoice",
    "trigger": {
        "type": "manual",
        "input": [{"name": "invoice", "type": "string", "required": True}],
    },
    "steps": [
        {
            "id": "pay",
            "type": "action",
            "action": "invoices.pay",
            "params": {"invoice": "{{ trigger.input.invoice }}", "payment_method": "pm_card_visa"},
        }
    ],
}


@pytest.mark.django_db(transaction=True)
def test_it_retries_a_transient_provider_failure_and_pays_the_invoice_once(live, mona):
    customer = factories.customer(live)
    invoice = billing.invoice_create(
        customer=customer, lines=[{"amount": 2500, "currency": "usd", "description": "Seats"}]
    )
    invoice = billing.invoice_finalize(invoice=invoice)
    workflow = factories.workflow_active(live, PAY_INVOICE, user=mona)
    billing.provider_fail_next(environment=live, count=2)

    run = run_start_manual(workflow=workflow, input={"invoice": invoice.id}, user=mona)
    drain()

    run.refresh_from_db()
    step = StepRun.objects.get(run=run, step_id="pay")
    assert run.status == Run.Status.SUCCEEDED
    assert step.attempts == 3
    assert [error["retryable"] for error in step.attempt_errors] == [True, True]
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice.charges.filter(status="succeeded").count() == 1
