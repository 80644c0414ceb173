"""Built-in billing actions: they call the billing services with the step's idempotency key,
act on the latest state, stay in the run's environment (and connected account), and report
what they changed."""

from __future__ import annotations

import pytest

from billing import services
from billing.provider import set_failures
from tests import factories
from workflows.actions import registry
from workflows.actions.registry import ActionContext, ActionError


def run_action(key: str, ctx: ActionContext, **params) -> dict:
    return registry.get(key).execute(ctx, params)


def ctx_for(environment, key: str = "1/step/", **kwargs) -> ActionContext:
    return ActionContext(environment=environment, idempotency_key=key, run_id=1, **kwargs)


def open_invoice(environment, customer=None, amount: int = 5000):
    customer = customer or factories.customer(environment, default_payment_method="pm_card_visa")
    invoice = services.invoice_create(
        customer=customer, lines=[{"amount": amount, "currency": "usd", "description": "Work"}]
    )
    return services.invoice_finalize(invoice=invoice)


def test_it_retrieves_the_latest_state_as_a_snapshot(live):
    customer = factories.customer(live, name="Jenny")
    services.customer_update(customer=customer, changes={"name": "Jenny Rosen"})
    output = run_action("customers.retrieve", ctx_for(live), customer=customer.pk)
    assert output["object"] == "customer"
    assert output["id"] == customer.pk
    assert output["name"] == "Jenny Rosen"


def test_it_updates_a_customer_and_records_only_the_changed_fields(live):
    customer = factories.customer(live, metadata={"keep": "1"})
    ctx = ctx_for(live)
    output = run_action(
        "customers.update", ctx, customer=customer.pk, metadata={"Location": "Europe"}
    )
    assert output["metadata"] == {"keep": "1", "Location": "Europe"}
    assert ctx.changed == [
        {
            "object": "customer",
            "id": customer.pk,
            "before": {"metadata": {"Location": None}},
            "after": {"metadata": {"Location": "Europe"}},
        }
    ]


def test_it_passes_the_idempotency_key_so_a_repeat_changes_nothing(live):
    customer = factories.customer(live)
    mark = factories.event_mark()
    for _ in range(2):
        run_action(
            "customers.update", ctx_for(live, "9/tag/"), customer=customer.pk, metadata={"a": "1"}
        )
    assert factories.new_event_types(mark) == ["customer.updated"]


def test_it_does_not_find_an_object_of_another_environment(live, sandbox):
    customer = factories.customer(sandbox)
    with pytest.raises(ActionError) as exc:
        run_action("customers.update", ctx_for(live), customer=customer.pk, name="X")
    assert exc.value.type == "resource_missing"
    assert exc.value.message == f"No such customer: '{customer.pk}'"
    assert exc.value.param == "customer"
    assert exc.value.retryable is False


def test_it_acts_only_on_the_connected_account_s_objects(live):
    account = services.account_create(environment=live, name="Shop")
    theirs = factories.customer(live, account=account)
    platform = factories.customer(live)
    ctx = ctx_for(live, account=account)
    assert run_action("customers.retrieve", ctx, customer=theirs.pk)["id"] == theirs.pk
    with pytest.raises(ActionError) as exc:
        run_action("customers.retrieve", ctx, customer=platform.pk)
    assert exc.value.type == "resource_missing"


def test_it_turns_billing_errors_into_action_errors(live):
    customer = factories.customer(live)
    with pytest.raises(ActionError) as exc:
        run_action("customers.update", ctx_for(live), customer=customer.pk, email="not-an-email")
    assert exc.value.param == "email"
    assert exc.value.retryable is False


def test_it_marks_a_transient_provider_failure_retryable(live):
    invoice = open_invoice(live)
    set_failures(environment=live, count=1)
    with pytest.raises(ActionError) as exc:
        run_action("invoices.pay", ctx_for(live), invoice=invoice.pk)
    assert exc.value.retryable is True
    assert exc.value.type == "provider_unavailable"
    assert run_action("invoices.pay", ctx_for(live), invoice=invoice.pk)["status"] == "paid"


def test_it_requires_something_to_update(live):
    customer = factories.customer(live)
    with pytest.raises(ActionError, match="Nothing to update"):
        run_action("customers.update", ctx_for(live), customer=customer.pk)


def test_it_updates_cancels_a_subscription(live):
    customer = factories.customer(live, default_payment_method="pm_card_visa")
    sub = services.subscription_create(
        customer=customer, items=[{"price": factories.price(live), "quantity": 1}]
    )
    ctx = ctx_for(live, "1/upd/")
    updated = run_action("subscriptions.update", ctx, subscription=sub.pk, metadata={"x": "y"})
    assert updated["metadata"] == {"x": "y"}
    canceled = run_action("subscriptions.cancel", ctx_for(live, "1/cancel/"), subscription=sub.pk)
    assert canceled["status"] == "canceled"


def test_it_finalizes_voids_and_updates_invoices(live):
    customer = factories.customer(live)
    draft = services.invoice_create(
        customer=customer, lines=[{"amount": 100, "currency": "usd", "description": "x"}]
    )
    updated = run_action(
        "invoices.update", ctx_for(live, "1/upd/"), invoice=draft.pk, description="Hello"
    )
    assert updated["description"] == "Hello"
    finalized = run_action("invoices.finalize", ctx_for(live, "1/fin/"), invoice=draft.pk)
    assert finalized["status"] == "open"
    voided = run_action("invoices.void", ctx_for(live, "1/void/"), invoice=draft.pk)
    assert voided["status"] == "void"


def test_it_updates_a_payment_intent_and_refunds_it(live):
    charge = factories.paid_charge(live, amount=5000)
    intent_id = charge.payment_intent_id
    updated = run_action(
        "payment_intents.update",
        ctx_for(live, "1/pi/"),
        payment_intent=intent_id,
        metadata={"note": "vip"},
    )
    assert updated["metadata"] == {"note": "vip"}
    ctx = ctx_for(live, "1/refund/")
    refund = run_action("refunds.create", ctx, charge=charge.pk, amount=1500, reason="duplicate")
    assert (refund["object"], refund["amount"], refund["charge"]) == ("refund", 1500, charge.pk)
    assert ctx.changed[0]["object"] == "refund"
    assert run_action("payment_intents.retrieve", ctx_for(live), payment_intent=intent_id)["id"]


def test_it_changes_nothing_in_a_dry_run(live):
    customer = factories.customer(live)
    mark = factories.event_mark()
    ctx = ctx_for(live, dry_run=True)
    output = run_action("customers.update", ctx, customer=customer.pk, metadata={"a": "1"})
    assert output["metadata"] == {"a": "1"}
    assert factories.new_events(mark) == []
    customer.refresh_from_db()
    assert customer.metadata == {}


def test_it_lists_newest_first_and_pages_with_starting_after(live, sandbox):
    customer = factories.customer(live, default_payment_method="pm_card_visa")
    price = factories.price(live)
    subs = [
        services.subscription_create(customer=customer, items=[{"price": price, "quantity": 1}])
        for _ in range(3)
    ]
    factories.customer(sandbox)  # another environment's data is never listed
    first = run_action("subscriptions.list", ctx_for(live), customer=customer.pk, limit=2)
    assert first["object"] == "list"
    assert first["has_more"] is True
    assert [s["id"] for s in first["data"]] == [subs[2].pk, subs[1].pk]
    second = run_action(
        "subscriptions.list",
        ctx_for(live),
        customer=customer.pk,
        limit=2,
        starting_after=first["data"][-1]["id"],
    )
    assert [s["id"] for s in second["data"]] == [subs[0].pk]
    assert second["has_more"] is False


def test_it_filters_lists_by_status(live):
    open_invoice(live)
    customer = factories.customer(live)
    services.invoice_create(
        customer=customer, lines=[{"amount": 100, "currency": "usd", "description": "x"}]
    )
    drafts = run_action("invoices.list", ctx_for(live), status="draft")
    assert [i["status"] for i in drafts["data"]] == ["draft"]
    charges = run_action("charges.list", ctx_for(live))
    assert charges["data"] == []


def test_it_rejects_a_list_limit_out_of_range(live):
    with pytest.raises(ActionError, match="'limit' must be a whole number from 1 to 100"):
        run_action("charges.list", ctx_for(live), limit=500)


def test_it_declares_the_built_in_actions():
    keys = {a.key for a in registry.all_actions()}
    assert {
        "customers.retrieve",
        "customers.update",
        "subscriptions.retrieve",
        "subscriptions.update",
        "subscriptions.cancel",
        "invoices.retrieve",
        "invoices.update",
        "invoices.finalize",
        "invoices.void",
        "invoices.pay",
        "payment_intents.retrieve",
        "payment_intents.update",
        "refunds.create",
        "subscriptions.list",
        "invoices.list",
        "charges.list",
    } <= keys
    assert registry.get("customers.retrieve").side_effects is False
    assert registry.get("customers.update").side_effects is True
    assert registry.get("subscriptions.list").is_list_source is True
    assert registry.get("customers.update").output["object"] == "customer"
