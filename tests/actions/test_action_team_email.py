"""`team.email` against a real SMTP server on localhost (aiosmtpd)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import TestCase

from billing import services as billing
from tests import factories
from tests.smtp import free_port
from workflows.actions import registry
from workflows.actions.registry import ActionContext, ActionError
from workflows.actions.team_email import (
    execute,
    message_id_for,
    team_email_preview,
    validate_params,
)
from workflows.engine.executor import run_execute
from workflows.engine.store.forcing import force_rows
from workflows.engine.templating import resolve
from workflows.models import Delivery, Run, StepRun

PARAMS = {
    "recipients": ["mona", "vic@example.com"],
    "subject": "Large payment received",
    "body": "A payment over 1,000 USD arrived.",
    "rows": [
        {"label": "Customer", "value": "cus_123"},
        {"label": "Amount", "value": 150000},
    ],
}


def _ctx(environment, key: str = "41/notify/", dry_run: bool = False) -> ActionContext:
    return ActionContext(environment=environment, idempotency_key=key, run_id=41, dry_run=dry_run)


def test_it_is_registered_as_a_non_transactional_side_effect():
    action = registry.get("team.email")
    assert action is not None
    assert action.side_effects is True
    assert action.transactional is False
    assert action.input("recipients").required is True


def test_it_delivers_the_email_to_a_real_smtp_server(live, mona, vic, smtp_settings):
    output = execute(_ctx(live), PARAMS)

    assert len(smtp_settings.messages) == 1
    received = smtp_settings.messages[0]
    assert sorted(received.rcpt_tos) == ["mona@example.com", "vic@example.com"]
    assert received.subject == "Large payment received"
    assert "A payment over 1,000 USD arrived." in received.body
    assert "Customer  cus_123" in received.body
    assert "Amount    150000" in received.body
    assert received.message_id == message_id_for("41/notify/")
    assert output["recipients"] == ["mona@example.com", "vic@example.com"]
    assert output["message_id"] == message_id_for("41/notify/")


def test_it_sends_nothing_when_the_same_key_is_executed_again(live, mona, vic, smtp_settings):
    first = execute(_ctx(live), PARAMS)
    again = execute(_ctx(live), PARAMS)

    assert len(smtp_settings.messages) == 1
    assert again == first
    delivery = Delivery.objects.get(kind="email", idempotency_key="41/notify/")
    assert delivery.status == Delivery.Status.SENT


def test_it_sends_again_for_another_key(live, mona, smtp_settings):
    execute(_ctx(live, key="41/notify/0"), {**PARAMS, "recipients": ["mona"]})
    execute(_ctx(live, key="41/notify/1"), {**PARAMS, "recipients": ["mona"]})

    assert len(smtp_settings.messages) == 2
    assert smtp_settings.messages[0].message_id != smtp_settings.messages[1].message_id


def test_it_refuses_a_recipient_who_is_not_a_back_office_user(live, mona, smtp_settings):
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {**PARAMS, "recipients": ["mona", "someone@customer.example"]})

    assert "'someone@customer.example'" in caught.value.message
    assert "not a back-office user" in caught.value.message
    assert caught.value.param == "recipients"
    assert caught.value.retryable is False
    assert smtp_settings.messages == []


def test_it_refuses_a_user_without_a_role_and_an_inactive_user(live, olga, vic, smtp_settings):
    vic.is_active = False
    vic.save()
    for name in ("olga", "vic"):
        with pytest.raises(ActionError) as caught:
            execute(_ctx(live), {**PARAMS, "recipients": [name]})
        assert f"'{name}'" in caught.value.message
    assert smtp_settings.messages == []


def test_it_reports_a_down_smtp_server_as_retryable(live, mona, settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nobody listens there
    settings.EMAIL_TIMEOUT = 2

    with pytest.raises(ActionError) as caught:
        execute(_ctx(live), {**PARAMS, "recipients": ["mona"]})
    assert caught.value.retryable is True
    assert caught.value.type == "email_error"
    assert Delivery.objects.get(idempotency_key="41/notify/").status == Delivery.Status.FAILED

    # The server is back: the retry with the same key sends, once.
    settings.EMAIL_PORT = smtp_server.port
    execute(_ctx(live), {**PARAMS, "recipients": ["mona"]})
    execute(_ctx(live), {**PARAMS, "recipients": ["mona"]})
    assert len(smtp_server.messages) == 1


def test_it_reports_a_4xx_reply_as_retryable_and_a_5xx_reply_as_final(live, mona, smtp_settings):
    smtp_settings.reply_with = "451 4.3.0 Try again later"
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live, key="1/a/"), {**PARAMS, "recipients": ["mona"]})
    assert caught.value.retryable is True
    assert "451" in caught.value.message

    smtp_settings.reply_with = "554 5.7.1 Rejected"
    with pytest.raises(ActionError) as caught:
        execute(_ctx(live, key="1/b/"), {**PARAMS, "recipients": ["mona"]})
    assert caught.value.retryable is False
    assert "554" in caught.value.message


def test_it_sends_nothing_in_a_dry_run(live, mona, smtp_settings):
    output = execute(_ctx(live, dry_run=True), PARAMS | {"recipients": ["mona"]})

    assert smtp_settings.messages == []
    assert output["recipients"] == ["mona@example.com"]
    assert not Delivery.objects.exists()


def test_it_previews_subject_body_and_rows_without_sending(db):
    preview = team_email_preview(
        params={**PARAMS, "subject": "Large\npayment", "rows": [{"label": "Note", "value": None}]}
    )

    assert preview["subject"] == "Large payment"
    assert preview["rows"] == [{"label": "Note", "value": "-"}]
    assert preview["text"] == "A payment over 1,000 USD arrived.\n\nNote  -\n"
    assert preview["recipients"] == ["mona", "vic@example.com"]
    assert mail.outbox == []


def test_it_checks_literal_recipients_when_the_workflow_is_saved(mona):
    assert validate_params({"recipients": ["mona"]}) == []
    assert validate_params({"recipients": "{{ trigger.input.owner }}"}) == []
    errors = validate_params({"recipients": ["mona", "nobody"]})
    assert errors == [("recipients", "Recipient 'nobody' is not a back-office user with a role.")]


def test_it_emails_the_customer_and_amount_of_a_large_payment(live, mona, smtp_settings):
    """The action side of the 1,000 USD scenario: dynamic fields resolved against the event."""
    trigger = {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {"id": "pi_1", "customer": "cus_big", "amount": 250000, "currency": "usd"}
        },
    }
    template = {
        "recipients": ["mona"],
        "subject": "Payment {{ trigger.data.object.id }} over 1,000 USD",
        "body": "Customer {{ trigger.data.object.customer }} paid "
        "{{ trigger.data.object.amount }} {{ trigger.data.object.currency }}.",
        "rows": [
            {"label": "Customer", "value": "{{ trigger.data.object.customer }}"},
            {"label": "Amount", "value": "{{ trigger.data.object.amount }}"},
        ],
    }
    params = resolve(template, {"trigger": trigger, "steps": {}, "run": {"id": 7}})

    execute(_ctx(live, key="7/notify_finance/"), params)

    [received] = smtp_settings.messages
    assert received.rcpt_tos == ["mona@example.com"]
    assert received.subject == "Payment pi_1 over 1,000 USD"
    assert "Customer cus_big paid 250000 usd." in received.body
    assert "Customer  cus_big" in received.body
    assert "Amount    250000" in received.body


LARGE_PAYMENTS = {
    "name": "Tell finance about large payments",
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
            "id": "notify_finance",
            "type": "action",
            "action": "team.email",
            "params": {
                "recipients": ["mona"],
                "subject": "Large payment {{ trigger.data.object.id }}",
                "body": "Customer {{ trigger.data.object.customer }} paid "
                "{{ trigger.data.object.amount }} {{ trigger.data.object.currency }}.",
                "rows": [
                    {"label": "Customer", "value": "{{ trigger.data.object.customer }}"},
                    {"label": "Amount", "value": "{{ trigger.data.object.amount }}"},
                ],
            },
        }
    ],
}


def test_the_engine_emails_finance_once_for_each_payment_over_1000_usd(live, mona, smtp_settings):
    """The scenario end to end in this process: event -> run -> team.email -> SMTP."""
    factories.workflow_active(live, LARGE_PAYMENTS)
    customer = factories.customer(live, email="big@example.com")
    with TestCase.captureOnCommitCallbacks(execute=True):
        large = billing.payment_intent_create(
            environment=live,
            amount=150000,
            currency="usd",
            customer=customer,
            payment_method="pm_card_visa",
            confirm=True,
        )
        for amount, currency in ((90000, "usd"), (250000, "eur")):
            billing.payment_intent_create(
                environment=live,
                amount=amount,
                currency=currency,
                customer=customer,
                payment_method="pm_card_visa",
                confirm=True,
            )
    [run] = Run.objects.all()
    run_execute(run_id=run.pk)
    # The worker "died" after the send, before the step's success was recorded: another worker
    # executes the step again with the same key, and no second e-mail goes out.
    force_rows(StepRun.objects.filter(run=run)).update(status=StepRun.Status.RUNNING, output=None)
    force_rows(Run.objects.filter(pk=run.pk)).update(
        status=Run.Status.PENDING, lease_owner="", lease_expires_at=None, finished_at=None
    )
    assert run_execute(run_id=run.pk) == "succeeded"

    step = StepRun.objects.get(run=run)
    assert (step.status, step.attempts) == (StepRun.Status.SUCCEEDED, 2)
    assert step.output["recipients"] == ["mona@example.com"]
    [received] = smtp_settings.messages
    assert received.rcpt_tos == ["mona@example.com"]
    assert received.subject == f"Large payment {large.id}"
    assert f"Customer {customer.id} paid 150000 usd." in received.body
    assert "Amount    150000" in received.body
