"""The ledger audit itself (tests/ledger.py): it passes a clean ledger and names each kind of
loss or duplicate, so the worker and fault tests that rely on it cannot pass vacuously.

Runs are executed in this process (as a worker does); e-mail goes to a real SMTP server.
"""

from __future__ import annotations

import pytest
from django.core.mail import EmailMessage

from billing.events import event_cause, event_request, record_event
from billing.models import Customer
from tests import factories
from tests.engine.test_engine_executor import committed, drain
from tests.engine.test_scaleout_ledger import WELCOME
from tests.ledger import audit_ledger
from workflows.engine.store.forcing import force_rows
from workflows.models import Delivery, Run, StepRun


@pytest.fixture
def welcomed(live, alice, mona, smtp_settings):
    """Two customers, each with its run of WELCOME executed: a clean ledger."""
    factories.workflow_active(live, WELCOME, alice)
    with committed():
        customers = [factories.customer(live), factories.customer(live)]
    drain()
    return customers


def audit_problems(live, smtp_server, **options) -> str:
    with pytest.raises(AssertionError) as failure:
        audit_ledger(live, smtp=smtp_server, **options)
    return str(failure.value)


def test_it_passes_a_clean_ledger_and_counts_it(live, welcomed, smtp_server):
    report = audit_ledger(live, smtp=smtp_server, expect_runs=2, expect_emails=2)
    assert report.statuses == {Run.Status.SUCCEEDED: 2}
    assert (report.steps, report.attempts, report.steps_retried) == (4, 4, [])
    assert (report.billing_events_caused, report.emails_sent, report.emails_received) == (2, 2, 2)


def test_it_names_a_run_still_pending_and_an_event_without_its_run(live, alice, mona, smtp_server):
    workflow = factories.workflow_active(live, WELCOME, alice)
    with committed():
        first, second = factories.customer(live), factories.customer(live)
    force_rows(Run.objects.filter(event__object_id=second.pk)).delete()

    problems = audit_problems(live, smtp_server)

    run = Run.objects.get(event__object_id=first.pk)
    assert f"run {run.pk} (workflow {workflow.pk}) is still pending" in problems
    assert f"has no run of workflow {workflow.pk}" in problems


def test_it_names_a_failed_run_unless_expected(live, welcomed, smtp_server):
    run = Run.objects.first()
    force_rows(Run.objects.filter(pk=run.pk)).update(
        status=Run.Status.FAILED, stop_reason="Step 'tag' broke"
    )

    assert f"run {run.pk} failed: Step 'tag' broke" in audit_problems(live, smtp_server)
    audit_ledger(live, smtp=smtp_server, expect_failed=[run])


def test_it_names_a_billing_effect_applied_twice(live, welcomed, smtp_server):
    step = StepRun.objects.filter(step_id="tag").first()
    customer = Customer.objects.get(pk=step.run.event.object_id)
    with event_cause(run_id=step.run_id), event_request(idempotency_key=step.idempotency_key):
        record_event(environment=live, account=None, type="customer.updated", obj=customer)

    problems = audit_problems(live, smtp_server)
    assert f"step {step.idempotency_key}: 2 customer.updated events for {customer.pk}" in problems


def test_it_names_an_effect_of_a_step_that_did_not_succeed(live, welcomed, smtp_server):
    step = StepRun.objects.filter(step_id="tag").first()
    force_rows(StepRun.objects.filter(pk=step.pk)).update(status=StepRun.Status.FAILED)

    problems = audit_problems(live, smtp_server, expect_failed=Run.objects.all())
    assert f"carries key '{step.idempotency_key}', which is not a succeeded step" in problems


def test_it_names_metadata_that_lost_a_step_write(live, welcomed, smtp_server):
    customer = Customer.objects.get(pk=welcomed[0].pk)
    Customer.objects.filter(pk=customer.pk).update(metadata={**customer.metadata, "welcomed": "no"})

    problems = audit_problems(live, smtp_server)
    assert f"customer {customer.pk} metadata['welcomed'] is 'no', the last step wrote 'yes'" in (
        problems
    )


def test_it_names_an_email_received_twice_and_a_delivery_missing(live, welcomed, smtp_server):
    first, second = Delivery.objects.order_by("pk")
    copy = EmailMessage("again", "again", to=["mona@example.com"])
    copy.extra_headers["Message-ID"] = first.message_id
    copy.send()
    force_rows(Delivery.objects.filter(pk=second.pk)).delete()

    problems = audit_problems(live, smtp_server)
    assert f"received 2 messages with Message-ID {first.message_id}, not one" in problems
    assert f"step {second.idempotency_key} succeeded with 0 sent deliveries" in problems
    assert f"Message-ID {second.message_id} that no sent delivery" in problems


def test_it_allows_a_copy_only_for_a_send_taken_over_after_a_worker_died(
    live, welcomed, smtp_server
):
    """The documented exception: the delivery records the second attempt that sent the copy."""
    first, second = Delivery.objects.order_by("pk")
    force_rows(Delivery.objects.filter(pk=first.pk)).update(attempts=2)
    for delivery in (first, second, second):
        copy = EmailMessage("again", "again", to=["mona@example.com"])
        copy.extra_headers["Message-ID"] = delivery.message_id
        copy.send()

    problems = audit_problems(live, smtp_server)
    assert f"Message-ID {first.message_id}" not in problems  # 2 copies, 2 attempts: allowed
    assert f"received 3 messages with Message-ID {second.message_id}, not one" in problems

    force_rows(Delivery.objects.filter(pk=second.pk)).update(attempts=3)
    report = audit_ledger(live, smtp=smtp_server)
    assert sorted(report.emails_resent) == [
        (first.idempotency_key, 2),
        (second.idempotency_key, 3),
    ]


def test_it_allows_one_message_of_an_email_step_that_timed_out_after_the_server_had_it(
    live, welcomed, smtp_server
):
    """A mail server that had the whole message and did not confirm it in time: the step
    failed with `timeout` and was not sent again, so its one message is allowed; a second
    copy is named."""
    run = Run.objects.order_by("pk").first()
    tell = StepRun.objects.get(run=run, step_id="tell")
    error = {"type": "timeout", "message": "The mail server did not answer", "retryable": False}
    force_rows(StepRun.objects.filter(pk=tell.pk)).update(status=StepRun.Status.FAILED, error=error)
    force_rows(Run.objects.filter(pk=run.pk)).update(
        status=Run.Status.FAILED, error={**error, "step": "tell"}
    )
    delivery = Delivery.objects.get(idempotency_key=tell.idempotency_key)
    force_rows(Delivery.objects.filter(pk=delivery.pk)).update(status=Delivery.Status.FAILED)

    report = audit_ledger(live, smtp=smtp_server, expect_failed=[run])
    assert report.emails_unconfirmed == [tell.idempotency_key]

    copy = EmailMessage("again", "again", to=["mona@example.com"])
    copy.extra_headers["Message-ID"] = delivery.message_id
    copy.send()
    problems = audit_problems(live, smtp_server, expect_failed=[run])
    assert f"received 2 message(s) with Message-ID {delivery.message_id}" in problems
