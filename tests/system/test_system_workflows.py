"""System workflows on the engine: each runs on its billing event and does its steps; a step
that fails on SMTP trouble leaves the run failed there, and a restart completes it with every
earlier effect exactly once (SQLite and PostgreSQL).

Events are dispatched when their transaction commits (captured here) and runs are executed in
this process with `run_execute`, what a worker calls.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from billing import services
from billing.models import Invoice
from tests import factories
from tests.smtp import SmtpServer, free_port
from workflows.engine.executor import run_execute
from workflows.engine.runs import run_restart
from workflows.models import (
    PaymentRetry,
    ProviderNotification,
    Run,
    StepRun,
    SystemStatistic,
    Workflow,
)
from workflows.services import (
    WorkflowLimitExceeded,
    WorkflowStateError,
    workflow_create,
    workflow_delete,
    workflow_update,
)
from workflows.system.catalogue import (
    SYSTEM_WORKFLOWS,
    payment_retries_run,
    system_definition,
    system_settings_update,
    system_workflows_install,
)


@pytest.fixture
def installed_live(live):
    return {w.system_key: w for w in system_workflows_install(environment=live)}


@pytest.fixture
def team(live, mona):
    """Team notifications of every system workflow go to Mona."""
    for spec in SYSTEM_WORKFLOWS:
        system_settings_update(
            environment=live,
            system_key=spec.key,
            enabled_steps=list(spec.steps),
            email_subject="",
            email_body="",
            team_recipients=["mona"],
        )


def committed(call):
    """Run a billing call and hand its events to the dispatcher as a commit would."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return call()


def execute_pending() -> list[Run]:
    for run_id in Run.objects.filter(status=Run.Status.PENDING).values_list("pk", flat=True):
        run_execute(run_id=run_id)
    return list(Run.objects.order_by("id"))


def run_of(key: str) -> Run:
    return Run.objects.get(workflow__system_key=key)


def steps_of(run: Run) -> dict[str, StepRun]:
    return {s.step_id: s for s in StepRun.objects.filter(run=run)}


def subscribe(live, email: str = "jenny@example.com"):
    customer = factories.customer(
        live, email=email, name="Jenny Rosen", default_payment_method="pm_card_visa"
    )
    price = factories.price(live, unit_amount=2000)
    subscription = committed(
        lambda: services.subscription_create(
            customer=customer, items=[{"price": price, "quantity": 1}]
        )
    )
    return customer, subscription


# --- install ----------------------------------------------------------------------------------


def test_it_installs_seven_active_published_system_workflows_once(live):
    first = system_workflows_install(environment=live)
    again = system_workflows_install(environment=live)

    assert len(first) == 7
    assert [w.pk for w in first] == [w.pk for w in again]
    assert [w.published_version_id for w in first] == [w.published_version_id for w in again]
    rows = Workflow.objects.filter(environment=live, kind=Workflow.Kind.SYSTEM)
    assert rows.count() == 7
    assert {w.status for w in rows} == {Workflow.Status.ACTIVE}
    assert {w.system_key for w in rows} == {s.key for s in SYSTEM_WORKFLOWS}


def test_it_keeps_each_environment_its_own_system_workflows(live, sandbox):
    system_workflows_install(environment=live)
    system_workflows_install(environment=sandbox)

    assert Workflow.objects.filter(environment=live, kind="system").count() == 7
    assert Workflow.objects.filter(environment=sandbox, kind="system").count() == 7


def test_it_gives_a_new_sandbox_its_system_workflows(db):
    from console.environments import sandbox_create

    env = sandbox_create(name="QA", slug="qa")

    assert Workflow.objects.filter(environment=env, kind="system").count() == 7


def test_it_publishes_the_definitions_from_code(installed_live):
    for spec in SYSTEM_WORKFLOWS:
        workflow = installed_live[spec.key]
        assert workflow.published_version.trigger_event == spec.event
        from workflows.definition.rows import version_definition

        assert version_definition(workflow.published_version) == system_definition(spec)


def test_it_keeps_system_workflows_out_of_the_automation_limits(live, installed_live, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "MAX_WORKFLOWS": 2, "MAX_ACTIVE_WORKFLOWS": 1}
    definition = {
        "name": "Tag",
        "trigger": {"type": "event", "event": "customer.created"},
        "steps": [],
    }
    workflow_create(environment=live, definition=definition)
    workflow_create(environment=live, definition={**definition, "name": "Tag 2"})

    with pytest.raises(WorkflowLimitExceeded):
        workflow_create(environment=live, definition={**definition, "name": "Tag 3"})


def test_it_refuses_to_edit_or_delete_a_system_workflow(installed_live):
    workflow = installed_live["subscription_created"]
    definition = system_definition(SYSTEM_WORKFLOWS[0])

    with pytest.raises(WorkflowStateError, match="system workflow"):
        workflow_update(workflow=workflow, definition={**definition, "steps": []})
    with pytest.raises(WorkflowStateError, match="system workflow"):
        workflow_delete(workflow=workflow)
    assert Workflow.objects.get(pk=workflow.pk).deleted_at is None


# --- each workflow on its event ---------------------------------------------------------------


def test_it_runs_subscription_creation_on_a_new_subscription(live, installed_live, team):
    customer, subscription = subscribe(live)
    execute_pending()

    run = run_of("subscription_created")
    assert run.status == Run.Status.SUCCEEDED
    assert run.event.type == "customer.subscription.created"
    steps = steps_of(run)
    assert list(steps) == ["update_statistics", "notify_provider", "email_customer", "notify_team"]
    assert {s.status for s in steps.values()} == {StepRun.Status.SUCCEEDED}
    stat = SystemStatistic.objects.get(metric="subscriptions.created")
    assert (stat.object_id, stat.amount, stat.currency) == (subscription.pk, 2000, "usd")
    notice = ProviderNotification.objects.get(topic="customer.subscription.created")
    assert notice.object_id == subscription.pk
    confirmation = [m for m in mail.outbox if m.to == ["jenny@example.com"]]
    assert [m.subject for m in confirmation if "subscription" in m.subject.lower()] == [
        "Your subscription is confirmed"
    ]
    assert any(subscription.pk in m.body for m in confirmation)
    to_team = [m for m in mail.outbox if m.to == ["mona@example.com"]]
    assert f"Subscription Creation: {subscription.pk}" in [m.subject for m in to_team]


def test_it_runs_invoice_creation_and_payment_success_for_the_first_invoice(
    live, installed_live, team
):
    customer, subscription = subscribe(live)
    execute_pending()

    invoice = Invoice.objects.get(subscription=subscription)
    assert run_of("invoice_created").status == Run.Status.SUCCEEDED
    paid = run_of("payment_succeeded")
    assert paid.status == Run.Status.SUCCEEDED
    assert list(steps_of(paid)) == ["update_statistics", "email_customer", "notify_team"]
    assert SystemStatistic.objects.get(metric="payments.succeeded").object_id == invoice.pk
    assert SystemStatistic.objects.get(metric="invoices.created").object_id == invoice.pk
    receipts = [m for m in mail.outbox if m.subject.startswith("Receipt for your payment")]
    assert len(receipts) == 1
    assert "20.00 USD" in receipts[0].body


def test_it_runs_subscription_cancellation(live, installed_live, team):
    customer, subscription = subscribe(live)
    execute_pending()
    committed(lambda: services.subscription_cancel(subscription=subscription))
    execute_pending()

    run = run_of("subscription_canceled")
    assert run.status == Run.Status.SUCCEEDED
    assert run.event.type == "customer.subscription.deleted"
    assert SystemStatistic.objects.filter(metric="subscriptions.canceled").count() == 1
    assert ProviderNotification.objects.filter(topic="customer.subscription.deleted").count() == 1
    assert "Your subscription has been cancelled" in [m.subject for m in mail.outbox]


def test_it_runs_payment_failure_and_schedules_the_retry(live, installed_live, team):
    customer = factories.customer(
        live, email="jonas@example.com", default_payment_method="pm_card_chargeDeclined"
    )
    invoice = services.invoice_create(
        customer=customer, lines=[{"amount": 4200, "currency": "eur", "description": "Pro"}]
    )
    committed(lambda: services.invoice_pay(invoice=invoice))
    execute_pending()

    run = run_of("payment_failed")
    assert run.status == Run.Status.SUCCEEDED
    assert list(steps_of(run)) == ["email_customer", "notify_team", "schedule_payment_retry"]
    failed = [m for m in mail.outbox if m.subject == "Your payment did not go through"]
    assert [m.to for m in failed] == [["jonas@example.com"]]
    assert "42.00 EUR" in failed[0].body
    retry = PaymentRetry.objects.get()
    assert (retry.invoice_id, retry.attempt, retry.status) == (invoice.pk, 2, "scheduled")
    assert retry.due_at > timezone.now() + timedelta(hours=23)

    # Nothing is due yet; once it is, the invoice is paid with the new card.
    assert payment_retries_run() == 0
    services.customer_update(customer=customer, changes={"default_payment_method": "pm_card_visa"})
    assert payment_retries_run(now=retry.due_at + timedelta(seconds=1)) == 1
    retry.refresh_from_db()
    assert retry.status == PaymentRetry.Status.SUCCEEDED
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert payment_retries_run(now=retry.due_at + timedelta(seconds=2)) == 0


def test_it_runs_refund_creation(live, installed_live, team):
    customer = factories.customer(live, email="ana@example.com")
    charge = factories.paid_charge(live, amount=5000, customer=customer)
    refund = committed(lambda: services.refund_create(charge=charge, amount=1500))
    execute_pending()

    run = run_of("refund_created")
    assert run.status == Run.Status.SUCCEEDED
    assert SystemStatistic.objects.get(metric="refunds.created").amount == 1500
    refunds = [m for m in mail.outbox if m.to == ["ana@example.com"]]
    assert [m.subject for m in refunds] == ["Your refund of 15.00 USD is on its way"]
    assert refund.pk in refunds[0].body


def test_it_runs_chargeback_creation(live, installed_live, team):
    customer = factories.customer(live, email="ana@example.com")
    charge = factories.paid_charge(live, amount=5000, customer=customer)
    dispute = committed(lambda: services.dispute_create(charge=charge))
    execute_pending()

    run = run_of("chargeback_created")
    assert run.status == Run.Status.SUCCEEDED
    assert list(steps_of(run)) == ["update_statistics", "notify_team"]
    assert SystemStatistic.objects.get(metric="chargebacks.created").object_id == dispute.pk
    assert [m.to for m in mail.outbox] == [["mona@example.com"]]
    assert f"Chargeback Creation: {dispute.pk}" == mail.outbox[0].subject


# --- settings ---------------------------------------------------------------------------------


def test_it_records_a_disabled_step_as_skipped_with_the_reason(live, installed_live, team):
    spec = next(s for s in SYSTEM_WORKFLOWS if s.key == "subscription_created")
    system_settings_update(
        environment=live,
        system_key=spec.key,
        enabled_steps=["update_statistics", "email_customer", "notify_team"],
        email_subject="",
        email_body="",
        team_recipients=["mona"],
    )
    subscribe(live)
    execute_pending()

    run = run_of("subscription_created")
    assert run.status == Run.Status.SUCCEEDED
    skipped = steps_of(run)["notify_provider"]
    assert skipped.status == StepRun.Status.SKIPPED
    assert skipped.output["reason"] == (
        "'Notify the payment provider' is turned off in this environment's settings "
        "for Subscription Creation."
    )
    assert ProviderNotification.objects.count() == 0
    assert steps_of(run)["notify_team"].status == StepRun.Status.SUCCEEDED


def test_it_skips_the_team_step_when_no_recipient_is_set(live, installed_live):
    subscribe(live)
    execute_pending()

    step = steps_of(run_of("subscription_created"))["notify_team"]
    assert step.status == StepRun.Status.SKIPPED
    assert "No team recipients" in step.output["reason"]


def test_it_sends_the_wording_the_environment_set(live, sandbox, installed_live, team):
    system_settings_update(
        environment=live,
        system_key="subscription_created",
        enabled_steps=["update_statistics", "notify_provider", "email_customer", "notify_team"],
        email_subject="Welcome aboard, {{ customer.name }}!",
        email_body="Hi {{ customer.name }}, {{ object.id }} costs {{ amount }}. Cheers.",
        team_recipients=["mona"],
    )
    customer, subscription = subscribe(live)
    execute_pending()

    welcome = [m for m in mail.outbox if m.subject == "Welcome aboard, Jenny Rosen!"]
    assert len(welcome) == 1
    assert welcome[0].body == f"Hi Jenny Rosen, {subscription.pk} costs 20.00 USD. Cheers.\n"


def test_it_refuses_settings_that_do_not_compile_or_name_strangers(live, installed_live):
    from workflows.system.catalogue import SystemWorkflowError

    with pytest.raises(SystemWorkflowError) as caught:
        system_settings_update(
            environment=live,
            system_key="payment_failed",
            enabled_steps=["email_customer", "launch_rockets"],
            email_subject="{% if %}",
            email_body="",
            team_recipients=["stranger@example.org"],
        )
    assert set(caught.value.errors) == {"steps", "email_subject", "team_recipients"}


def test_it_refuses_a_template_that_would_leak_the_context_or_fails_on_a_sample(
    live, installed_live
):
    from workflows.system.catalogue import SystemWorkflowError

    with pytest.raises(SystemWorkflowError) as caught:
        system_settings_update(
            environment=live,
            system_key="refund_created",
            enabled_steps=["update_statistics", "email_customer", "notify_team"],
            email_subject="Refund",
            email_body="{% debug %}",
            team_recipients=[],
        )
    assert caught.value.errors == {"email_body": "The {% debug %} tag is not allowed in e-mails."}
    with pytest.raises(SystemWorkflowError) as caught:
        system_settings_update(
            environment=live,
            system_key="refund_created",
            enabled_steps=["update_statistics", "email_customer", "notify_team"],
            email_subject='{% include "admin/base.html" %}',
            email_body="",
            team_recipients=[],
        )
    assert caught.value.errors["email_subject"].startswith("The template fails on a sample refund")


# --- SMTP down: fail at the e-mail step, restart after it is back -----------------------------


@pytest.fixture
def switchable_smtp(settings):
    """A real SMTP server on a fixed port that the test can stop and start again."""
    server = SmtpServer(host="127.0.0.1", port=free_port())
    state = {"controller": None}

    def start() -> None:
        controller = Controller(server, hostname=server.host, port=server.port)
        controller.start()
        state["controller"] = controller

    def stop() -> None:
        if state["controller"] is not None:
            state["controller"].stop()
            state["controller"] = None

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.host, server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    start()
    server.start, server.stop = start, stop
    try:
        yield server
    finally:
        stop()


def test_it_fails_at_the_email_step_while_smtp_is_down_and_restarts_once_it_is_back(
    live, installed_live, team, switchable_smtp, mona
):
    smtp = switchable_smtp
    smtp.stop()
    customer, subscription = subscribe(live)
    run_execute(run_id=run_of("subscription_created").pk)

    run = run_of("subscription_created")
    assert run.status == Run.Status.FAILED
    assert run.error["step"] == "email_customer"
    steps = steps_of(run)
    assert steps["update_statistics"].status == StepRun.Status.SUCCEEDED
    assert steps["notify_provider"].status == StepRun.Status.SUCCEEDED
    failed = steps["email_customer"]
    assert failed.status == StepRun.Status.FAILED
    assert failed.error["type"] == "email_error"
    assert "Could not send the e-mail" in failed.error["message"]
    assert "notify_team" not in steps
    assert smtp.messages == []

    smtp.start()
    run_restart(run=run, user=mona)
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    steps = steps_of(run)
    assert {s.status for s in steps.values()} == {StepRun.Status.SUCCEEDED}
    # The earlier steps ran once: one attempt each, one statistic, one provider notice.
    assert steps["update_statistics"].attempts == 1
    assert steps["notify_provider"].attempts == 1
    assert SystemStatistic.objects.filter(metric="subscriptions.created").count() == 1
    assert ProviderNotification.objects.filter(object_id=subscription.pk).count() == 1
    # The SMTP server got the confirmation once and the team notification once.
    received = [(m.rcpt_tos, m.subject) for m in smtp.messages]
    assert received.count((["jenny@example.com"], "Your subscription is confirmed")) == 1
    assert received.count((["mona@example.com"], f"Subscription Creation: {subscription.pk}")) == 1
    assert len(received) == 2


def test_it_keeps_a_skipped_step_skipped_when_the_run_restarts(
    live, installed_live, team, switchable_smtp, mona
):
    system_settings_update(
        environment=live,
        system_key="subscription_created",
        enabled_steps=["update_statistics", "email_customer", "notify_team"],
        email_subject="",
        email_body="",
        team_recipients=["mona"],
    )
    switchable_smtp.stop()
    subscribe(live)
    run_execute(run_id=run_of("subscription_created").pk)
    run = run_of("subscription_created")
    assert run.status == Run.Status.FAILED

    switchable_smtp.start()
    run_restart(run=run, user=mona)
    assert run_execute(run_id=run.pk) == Run.Status.SUCCEEDED

    skipped = steps_of(run)["notify_provider"]
    assert (skipped.status, skipped.attempts) == (StepRun.Status.SKIPPED, 1)
    assert ProviderNotification.objects.count() == 0
    assert len(switchable_smtp.messages) == 2


def test_it_answers_the_api_with_a_clear_error_on_edit_or_delete(live, installed_live):
    from tests.api_client import api_for, error_of

    api = api_for(live)
    workflow = installed_live["payment_failed"]
    definition = system_definition(SYSTEM_WORKFLOWS[3])

    updated = api.post(f"/workflows/{workflow.pk}", {**definition, "steps": []})
    deleted = api.delete(f"/workflows/{workflow.pk}")

    for response in (updated, deleted):
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "system_workflow"
        assert "Payment Failure' is a system workflow" in error["message"]
    assert Workflow.objects.get(pk=workflow.pk).deleted_at is None


def test_it_runs_on_connected_account_events_too(live, installed_live, team):
    account = services.account_create(environment=live, name="Shop", email="shop@example.com")
    customer = factories.customer(live, account=account, default_payment_method="pm_card_visa")
    price = factories.price(live, account=account)
    committed(
        lambda: services.subscription_create(
            customer=customer, items=[{"price": price, "quantity": 1}]
        )
    )
    execute_pending()

    run = run_of("subscription_created")
    assert run.event.account_id == account.pk
    assert run.status == Run.Status.SUCCEEDED


def test_it_schedules_retries_and_skips_one_whose_invoice_is_no_longer_open(live, installed_live):
    from django_q.models import Schedule

    from workflows.system.catalogue import PAYMENT_RETRY_FUNC, PAYMENT_RETRY_SCHEDULE

    assert Schedule.objects.get(name=PAYMENT_RETRY_SCHEDULE).func == PAYMENT_RETRY_FUNC
    customer = factories.customer(live, default_payment_method="pm_card_chargeDeclined")
    invoice = services.invoice_create(
        customer=customer, lines=[{"amount": 900, "currency": "usd", "description": "Seat"}]
    )
    committed(lambda: services.invoice_pay(invoice=invoice))
    execute_pending()
    retry = PaymentRetry.objects.get(invoice_id=invoice.pk)
    services.invoice_void(invoice=Invoice.objects.get(pk=invoice.pk))

    assert payment_retries_run(now=retry.due_at + timedelta(seconds=1)) == 1

    retry.refresh_from_db()
    assert (retry.status, retry.result) == ("skipped", "The invoice is no longer open.")
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.VOID
