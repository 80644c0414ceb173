"""The executor, called in this process the way a worker calls it (SQLite and PostgreSQL).

Billing changes commit through the services; the dispatcher runs on commit; each pending run is
executed by `run_execute`, exactly what the `workflows.tasks.run_execute` task does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from billing import services as billing
from billing.models import Customer, Event, Subscription
from tests import factories
from workflows.actions import registry
from workflows.actions.registry import Action, ActionError, StepSkipped
from workflows.engine.executor import run_execute
from workflows.engine.leases import lease_claim
from workflows.engine.runs import run_cancel
from workflows.engine.store.forcing import force_rows
from workflows.models import Run, StepRun


def committed():
    """Run on-commit callbacks (the dispatcher) as a real commit would."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def drain(limit: int = 50) -> list[int]:
    """Execute pending runs one by one, like a worker; returns the run ids executed."""
    executed: list[int] = []
    for _ in range(limit):
        run = Run.objects.filter(status=Run.Status.PENDING).order_by("pk").first()
        if run is None:
            return executed
        with committed():
            run_execute(run_id=run.pk)
        executed.append(run.pk)
    raise AssertionError(f"runs still pending after {limit} executions")


def steps_of(run: Run) -> dict[tuple[str, str], StepRun]:
    return {(s.step_id, s.iteration): s for s in StepRun.objects.filter(run=run)}


REGION = factories.region_workflow_definition()


def test_it_tags_customers_by_region_through_the_first_matching_branch(live, alice):
    factories.workflow_active(live, REGION, alice)
    with committed():
        us = factories.customer(live, address={"country": "US"})
        fr = factories.customer(live, address={"country": "FR"})
        jp = factories.customer(live, address={"country": "JP"})
        nowhere = factories.customer(live)
    assert len(drain()) == 4

    locations = {c.pk: c.metadata.get("Location") for c in Customer.objects.all()}
    assert locations == {
        us.pk: "North America",
        fr.pk: "Europe",
        jp.pk: "Global",
        nowhere.pk: "Global",
    }
    run = Run.objects.get(event__object_id=fr.pk, event__type="customer.created")
    assert run.status == Run.Status.SUCCEEDED
    assert run.path == [{"step": "region", "iteration": "", "branch": "Europe"}]
    records = steps_of(run)
    assert records[("region", "")].branch_chosen == "Europe"
    tag = records[("tag_eu", "")]
    assert tag.status == StepRun.Status.SUCCEEDED
    assert tag.attempts == 1
    assert tag.idempotency_key == f"{run.pk}/tag_eu/"
    assert tag.params == {"customer": fr.pk, "metadata": {"Location": "Europe"}}
    assert tag.changed_objects[0]["id"] == fr.pk
    assert run.started_at is not None and run.finished_at is not None


PAYMENT_FAILED = {
    "name": "Large insufficient-funds failures",
    "trigger": {
        "type": "event",
        "event": "payment_intent.payment_failed",
        "accounts": "platform",
        "conditions": {
            "all": [
                {"field": "trigger.data.object.amount", "op": "gt", "value": 10000},
                {"field": "trigger.data.object.currency", "op": "eq", "value": "usd"},
                {
                    "field": "trigger.data.object.last_payment_error.decline_code",
                    "op": "eq",
                    "value": "insufficient_funds",
                },
            ]
        },
    },
    "steps": [
        {
            "id": "flag",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.customer }}",
                "metadata": {"payment_risk": "insufficient_funds"},
            },
        }
    ],
}


def test_it_runs_the_payment_failed_workflow_only_for_matching_events(live, alice):
    workflow = factories.workflow_active(live, PAYMENT_FAILED, alice)
    customer = factories.customer(live)

    def fail(amount: int, method: str) -> str:
        with committed():
            intent = billing.payment_intent_create(
                environment=live,
                amount=amount,
                currency="usd",
                customer=customer,
                payment_method=method,
                confirm=True,
            )
        return intent.pk

    big = fail(20000, "pm_card_chargeDeclinedInsufficientFunds")
    fail(5000, "pm_card_chargeDeclinedInsufficientFunds")  # 50 USD: too small
    fail(10000, "pm_card_chargeDeclinedInsufficientFunds")  # exactly 100 USD: not over
    fail(20000, "pm_card_chargeDeclined")  # generic decline
    assert Event.objects.filter(type="payment_intent.payment_failed").count() == 4

    runs = list(Run.objects.filter(workflow=workflow))
    assert [r.event.object_id for r in runs] == [big]
    drain()
    customer.refresh_from_db()
    assert customer.metadata["payment_risk"] == "insufficient_funds"


INVOICE_FINALIZED = {
    "name": "Finalized invoices",
    "trigger": {
        "type": "event",
        "event": "invoice.updated",
        "accounts": "platform",
        # Stripe calls a finalized invoice "open".
        "conditions": {
            "all": [{"field": "trigger.data.object.status", "op": "eq", "value": "open"}]
        },
    },
    "steps": [
        {
            "id": "note",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.customer }}",
                "metadata": {"finalized_invoice": "{{ trigger.data.object.id }}"},
            },
        }
    ],
}


def test_it_limits_the_invoice_trigger_to_finalized_invoices(live, alice):
    workflow = factories.workflow_active(live, INVOICE_FINALIZED, alice)
    customer = factories.customer(live)
    with committed():
        draft = billing.invoice_create(
            customer=customer, lines=[{"amount": 1000, "currency": "usd", "description": "A"}]
        )
        billing.invoice_update(invoice=draft, changes={"metadata": {"stage": "draft"}})
    assert not Run.objects.filter(workflow=workflow).exists()

    with committed():
        billing.invoice_finalize(invoice=draft)
        billing.invoice_update(invoice=draft, changes={"metadata": {"stage": "final"}})
    assert Run.objects.filter(workflow=workflow).count() == 1
    drain()
    customer.refresh_from_db()
    assert customer.metadata["finalized_invoice"] == draft.pk


def subscriptions_for(environment, customer, count: int) -> list[Subscription]:
    price = factories.price(environment)
    return [
        billing.subscription_create(
            customer=customer,
            items=[{"price": price, "quantity": 1}],
            default_payment_method="pm_card_visa",
        )
        for _ in range(count)
    ]


def loop_definition(page_size: int, max_items: int | None = None) -> dict:
    loop = {
        "id": "each_subscription",
        "type": "foreach",
        "action": "subscriptions.list",
        "params": {
            "customer": "{{ trigger.input.customer }}",
            "status": "active",
            "limit": page_size,
        },
        "steps": [
            {
                "id": "mark",
                "type": "action",
                "action": "subscriptions.update",
                "params": {
                    "subscription": "{{ item.id }}",
                    "metadata": {"reviewed": "yes"},
                },
            }
        ],
    }
    if max_items is not None:
        loop["max_items"] = max_items
    return {
        "name": "Mark subscriptions",
        "trigger": {
            "type": "manual",
            "input": [{"name": "customer", "type": "string", "required": True}],
        },
        "steps": [loop],
    }


def test_it_updates_every_active_subscription_across_pages(live, alice):
    from workflows.engine.runs import run_start_manual

    customer = factories.customer(live)
    subscriptions = subscriptions_for(live, customer, 5)
    billing.subscription_cancel(subscription=subscriptions[0])
    other = subscriptions_for(live, factories.customer(live), 1)[0]
    workflow = factories.workflow_active(live, loop_definition(page_size=2), alice)

    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    drain()
    run.refresh_from_db()

    assert run.status == Run.Status.SUCCEEDED
    reviewed = {s.pk for s in Subscription.objects.all() if s.metadata.get("reviewed") == "yes"}
    assert reviewed == {s.pk for s in subscriptions[1:]}
    assert other.pk not in reviewed
    records = steps_of(run)
    assert records[("each_subscription", "")].output["count"] == 4
    assert sorted(i for (step, i) in records if step == "mark") == ["0", "1", "2", "3"]
    assert len({r.idempotency_key for r in records.values()}) == len(records)


def test_it_fails_a_loop_above_its_cap_instead_of_truncating(live, alice):
    from workflows.engine.runs import run_start_manual

    customer = factories.customer(live)
    subscriptions_for(live, customer, 3)
    workflow = factories.workflow_active(live, loop_definition(page_size=2, max_items=2), alice)

    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    drain()
    run.refresh_from_db()

    assert run.status == Run.Status.FAILED
    assert run.error["type"] == "foreach_cap"
    assert run.error["step"] == "each_subscription"
    assert "more than 2" in run.error["message"]
    assert not StepRun.objects.filter(run=run, step_id="mark").exists()


BIG_PAYMENTS = {
    "name": "Big payment alert",
    "trigger": {
        "type": "event",
        "event": "payment_intent.succeeded",
        "accounts": "platform",
        "conditions": {
            "all": [
                {"field": "trigger.data.object.amount", "op": "gt", "value": 100000},
                {"field": "trigger.data.object.currency", "op": "eq", "value": "usd"},
            ]
        },
    },
    "steps": [
        {
            "id": "tell_finance",
            "type": "action",
            "action": "team.email",
            "params": {
                "recipients": ["mona"],
                "subject": "Large payment",
                "body": "Customer {{ trigger.data.object.customer }} paid "
                "{{ trigger.data.object.amount }} {{ trigger.data.object.currency }}.",
            },
        }
    ],
}


def test_it_caps_the_total_iterations_of_nested_loops(live, alice, settings):
    from workflows.engine.runs import run_start_manual

    settings.BILLFLOW = {**settings.BILLFLOW, "RUN_MAX_ITERATIONS": 8}
    customer = factories.customer(live)
    subscriptions_for(live, customer, 3)
    outer = loop_definition(page_size=10)
    inner = {**outer["steps"][0], "id": "again"}  # 3 x 3 = 9 body iterations, + 3 outer > 8
    outer["steps"][0]["steps"] = [inner]
    workflow = factories.workflow_active(live, outer, alice)

    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
    drain()
    run.refresh_from_db()

    assert run.status == Run.Status.FAILED
    assert run.error["type"] == "run_iteration_cap"
    assert (run.error["step"], run.error["iteration"]) == ("again", "1")
    assert "limit of 8" in run.error["message"]
    # The first inner loop ran in full; nothing of the refused one did.
    marks = StepRun.objects.filter(run=run, step_id="mark").values_list("iteration", flat=True)
    assert sorted(marks) == ["0.0", "0.1", "0.2"]


def test_it_emails_the_team_for_large_usd_payments(live, alice, mona):
    factories.workflow_active(live, BIG_PAYMENTS, alice)
    customer = factories.customer(live)
    with committed():
        factories.paid_charge(live, amount=250000, currency="usd", customer=customer)
        factories.paid_charge(live, amount=90000, currency="usd", customer=customer)
        factories.paid_charge(live, amount=250000, currency="eur", customer=customer)
    drain()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["mona@example.com"]
    assert f"Customer {customer.pk} paid 250000 usd." in message.body


FALSE_CONDITION = {
    "name": "Only VIPs",
    "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
    "steps": [
        {
            "id": "is_vip",
            "type": "condition",
            "condition": {
                "all": [{"field": "trigger.data.object.metadata.vip", "op": "eq", "value": "yes"}]
            },
        },
        {
            "id": "welcome",
            "type": "action",
            "action": "customers.update",
            "params": {"customer": "{{ trigger.data.object.id }}", "metadata": {"welcomed": "yes"}},
        },
    ],
}


def test_it_stops_as_succeeded_at_a_false_condition(live, alice):
    factories.workflow_active(live, FALSE_CONDITION, alice)
    with committed():
        plain = factories.customer(live)
        vip = factories.customer(live, metadata={"vip": "yes"})
    drain()

    run = Run.objects.get(event__object_id=plain.pk)
    assert run.status == Run.Status.SUCCEEDED
    assert "is_vip" in run.stop_reason and "not run" in run.stop_reason
    assert run.path == [{"step": "is_vip", "iteration": "", "result": False}]
    assert set(steps_of(run)) == {("is_vip", "")}
    assert steps_of(run)[("is_vip", "")].output == {"result": False}
    plain.refresh_from_db()
    assert "welcomed" not in plain.metadata

    vip.refresh_from_db()
    assert vip.metadata["welcomed"] == "yes"


RECURSIVE = {
    "name": "Touch on update",
    "trigger": {"type": "event", "event": "customer.updated", "accounts": "platform"},
    "steps": [
        {
            "id": "touch",
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.id }}",
                "metadata": {"touched": "{{ trigger.id }}"},
            },
        }
    ],
}


def test_it_allows_one_recursive_run_then_fails_with_a_recursion_error(live, alice):
    workflow = factories.workflow_active(live, RECURSIVE, alice)
    customer = factories.customer(live)
    with committed():
        billing.customer_update(customer=customer, changes={"name": "Jenny"})
    drain()

    runs = list(Run.objects.filter(workflow=workflow).order_by("pk"))
    assert [r.status for r in runs] == [
        Run.Status.SUCCEEDED,
        Run.Status.SUCCEEDED,
        Run.Status.FAILED,
    ]
    first, second, third = runs
    assert first.cause_chain == []
    assert second.cause_chain == [[workflow.pk, first.pk]]
    assert third.error["type"] == "recursion"
    assert f"runs {first.pk}, {second.pk}" in third.error["message"]
    assert not StepRun.objects.filter(run=third).exists()
    # Nothing loops: the failed run made no change, so no further event is pending.
    assert Event.objects.filter(type="customer.updated").count() == 3
    assert not Event.objects.filter(type="customer.updated", dispatched_at__isnull=True).exists()


PAY_INVOICE = {
    "name": "Collect",
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


def notify_partner(url: str) -> dict:
    return {
        "name": "Notify partner",
        "trigger": {"type": "manual", "input": [{"name": "note", "type": "string"}]},
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "http.post",
                "params": {"url": url, "body": {"note": "{{ trigger.input.note }}"}},
            }
        ],
    }


def test_it_retries_a_transient_http_failure_and_records_the_attempts(
    live, alice, settings, http_server
):
    from workflows.engine.runs import run_start_manual

    settings.BILLFLOW = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["127.0.0.1"]}
    http_server.script(503, 503, 200)
    workflow = factories.workflow_active(live, notify_partner(http_server.url("/hook")), alice)

    run = run_start_manual(workflow=workflow, input={"note": "hello"}, user=alice)
    drain()
    run.refresh_from_db()

    assert run.status == Run.Status.SUCCEEDED
    post = steps_of(run)[("post", "")]
    assert post.attempts == 3
    assert [e["attempt"] for e in post.attempt_errors] == [1, 2]
    assert all(e["retryable"] for e in post.attempt_errors)
    assert post.output["status"] == 200
    assert len(http_server.requests) == 3
    assert {r.json()["note"] for r in http_server.requests} == {"hello"}


def test_it_gives_up_after_the_configured_attempts(live, alice, settings):
    from workflows.engine.runs import run_start_manual

    settings.BILLFLOW = {**settings.BILLFLOW, "STEP_MAX_ATTEMPTS": 3}
    customer = factories.customer(live)
    invoice = billing.invoice_create(
        customer=customer, lines=[{"amount": 1500, "currency": "usd", "description": "Plan"}]
    )
    billing.invoice_finalize(invoice=invoice)
    workflow = factories.workflow_active(live, PAY_INVOICE, alice)
    billing.provider_fail_next(environment=live, count=10)

    run = run_start_manual(workflow=workflow, input={"invoice": invoice.pk}, user=alice)
    drain()
    run.refresh_from_db()

    assert run.status == Run.Status.FAILED
    assert run.error["step"] == "pay"
    assert run.error["retryable"] is True
    assert "gave up after 3 attempts" in run.error["message"]
    assert steps_of(run)[("pay", "")].attempts == 3
    billing.provider_fail_next(environment=live, count=0)


def test_it_stops_a_step_that_keeps_killing_its_worker(live, alice, settings):
    """A crash leaves the attempt counted; after STEP_MAX_ATTEMPTS starts the step fails."""
    settings.BILLFLOW = {**settings.BILLFLOW, "STEP_MAX_ATTEMPTS": 2}
    workflow = factories.workflow_active(live, REGION, alice)
    with committed():
        factories.customer(live, address={"country": "US"})
    run = Run.objects.get(workflow=workflow)
    # Two workers died inside `tag_na`: each counted its attempt, then vanished.
    lease_claim(run_id=run.pk, owner="dead-worker")
    force_rows(StepRun).create(
        run=run,
        step_id="region",
        status=StepRun.Status.SUCCEEDED,
        attempts=1,
        idempotency_key=f"{run.pk}/region/",
        output={"index": 0, "path": "North America"},
        branch_chosen="North America",
    )
    force_rows(StepRun).create(
        run=run,
        step_id="tag_na",
        status=StepRun.Status.RUNNING,
        attempts=2,
        idempotency_key=f"{run.pk}/tag_na/",
    )
    force_rows(Run.objects.filter(pk=run.pk)).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert run_execute(run_id=run.pk) == Run.Status.FAILED
    run.refresh_from_db()
    assert run.error["type"] == "attempts_exhausted"
    assert "started 2 times" in run.error["message"]
    assert steps_of(run)[("tag_na", "")].attempts == 2


def test_it_takes_over_a_run_whose_lease_expired_but_not_a_live_one(live, alice):
    workflow = factories.workflow_active(live, REGION, alice)
    with committed():
        customer = factories.customer(live, address={"country": "CA"})
    run = Run.objects.get(workflow=workflow)
    assert lease_claim(run_id=run.pk, owner="other-worker")

    assert run_execute(run_id=run.pk) == "not_claimed"
    force_rows(Run.objects.filter(pk=run.pk)).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED
    customer.refresh_from_db()
    assert customer.metadata["Location"] == "North America"
    assert run_execute(run_id=run.pk) == "not_claimed"


def test_it_checks_for_cancellation_before_each_step(live, alice):
    from workflows.engine.runs import run_start_manual

    def cancel_own_run(ctx, params):
        run_cancel(run=Run.objects.get(pk=ctx.run_id))
        return {"canceled": True}

    registry.register(
        Action(key="tests.cancel_own_run", label="Cancel", execute=cancel_own_run), replace=True
    )
    try:
        customer = factories.customer(live)
        definition = {
            "name": "Cancels itself",
            "trigger": {"type": "manual", "input": [{"name": "customer", "type": "string"}]},
            "steps": [
                {"id": "stop", "type": "action", "action": "tests.cancel_own_run", "params": {}},
                {
                    "id": "after",
                    "type": "action",
                    "action": "customers.update",
                    "params": {"customer": "{{ trigger.input.customer }}", "metadata": {"a": "1"}},
                },
            ],
        }
        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        assert run_execute(run_id=run.pk) == Run.Status.CANCELED
    finally:
        registry.unregister("tests.cancel_own_run")
    records = steps_of(run)
    # The step under way when the run was canceled ended; `after` counted its attempt, then
    # found the run canceled and did nothing.
    assert records[("stop", "")].status == StepRun.Status.SUCCEEDED
    assert records[("after", "")].status == StepRun.Status.CANCELED
    assert records[("after", "")].output is None
    customer.refresh_from_db()
    assert "a" not in customer.metadata


@pytest.mark.parametrize(
    "ending",
    [
        ActionError("The partner rejected the request.", type="rejected"),
        StepSkipped("Turned off in the settings."),
    ],
    ids=["failing", "skipping"],
)
def test_a_step_ending_after_its_run_was_canceled_leaves_the_cancel_alone(live, alice, ending):
    from workflows.engine.runs import run_start_manual

    def cancel_then_end(ctx, params):
        run_cancel(run=Run.objects.get(pk=ctx.run_id))  # commits: the action is not transactional
        raise ending

    registry.register(
        Action(
            key="tests.cancel_then_end",
            label="Cancel, then fail or skip",
            execute=cancel_then_end,
            transactional=False,
        ),
        replace=True,
    )
    try:
        definition = {
            "name": "Canceled while ending",
            "trigger": {"type": "manual", "input": []},
            "steps": [
                {"id": "post", "type": "action", "action": "tests.cancel_then_end", "params": {}}
            ],
        }
        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        assert run_execute(run_id=run.pk) == Run.Status.CANCELED
    finally:
        registry.unregister("tests.cancel_then_end")
    run.refresh_from_db()
    assert run.error is None  # the step's ending did not overwrite the cancel
    record = steps_of(run)[("post", "")]
    assert (record.status, record.output, record.error) == (StepRun.Status.CANCELED, None, None)


def test_it_fails_at_once_on_a_permanent_error_naming_the_step(live, alice):
    def refuse(ctx, params):
        raise ActionError("The partner rejected the request.", type="rejected")

    registry.register(Action(key="tests.refuse", label="Refuse", execute=refuse), replace=True)
    try:
        definition = {
            "name": "Refused",
            "trigger": {"type": "manual", "input": []},
            "steps": [{"id": "ask", "type": "action", "action": "tests.refuse", "params": {}}],
        }
        from workflows.engine.runs import run_start_manual

        workflow = factories.workflow_active(live, definition, alice)
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        run_execute(run_id=run.pk)
    finally:
        registry.unregister("tests.refuse")
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error == {
        "type": "rejected",
        "message": "The partner rejected the request.",
        "retryable": False,
        "step": "ask",
        "iteration": "",
    }
    ask = steps_of(run)[("ask", "")]
    assert ask.attempts == 1
    assert ask.error["type"] == "rejected"
    assert run.stop_reason == "Step 'ask' failed: The partner rejected the request."


@pytest.mark.parametrize("missing", ["", "cus_missing"])
def test_it_fails_a_step_whose_reference_cannot_be_resolved(live, alice, missing):
    from workflows.engine.runs import run_start_manual

    definition = {
        "name": "Bad reference",
        "trigger": {"type": "manual", "input": [{"name": "customer", "type": "string"}]},
        "steps": [
            {
                "id": "tag",
                "type": "action",
                "action": "customers.update",
                "params": {"customer": "{{ trigger.input.customer }}", "metadata": {"a": "1"}},
            }
        ],
    }
    workflow = factories.workflow_active(live, definition, alice)
    run = run_start_manual(
        workflow=workflow, input={"customer": missing} if missing else {}, user=alice
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error["step"] == "tag"
    assert run.error["retryable"] is False
