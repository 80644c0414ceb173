"""System workflows on real `qcluster` workers (PostgreSQL): a new subscription's events start
Subscription Creation, Invoice Creation and Payment Success, which finish on the workers and
deliver their e-mails to a real SMTP server once each."""

from __future__ import annotations

import pytest

from billing import services
from tests import factories
from tests.workers import qclusters, wait_for
from workflows.models import ProviderNotification, Run, StepRun, SystemStatistic
from workflows.system.catalogue import (
    SYSTEM_WORKFLOWS,
    system_settings_update,
    system_workflows_install,
)

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

FINISHED = [Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED]
EXPECTED = {"subscription_created", "invoice_created", "payment_succeeded"}


def test_it_runs_the_system_workflows_of_a_new_subscription_on_workers(
    transactional_db, live, mona, smtp_server
):
    system_workflows_install(environment=live)
    for spec in SYSTEM_WORKFLOWS:
        system_settings_update(
            environment=live,
            system_key=spec.key,
            enabled_steps=list(spec.steps),
            email_subject="",
            email_body="",
            team_recipients=["mona"],
        )
    customer = factories.customer(
        live, email="jenny@example.com", name="Jenny", default_payment_method="pm_card_visa"
    )
    price = factories.price(live, unit_amount=2000)

    with qclusters(count=1, workers=2, env={"EMAIL_URL": smtp_server.url}):
        subscription = services.subscription_create(
            customer=customer, items=[{"price": price, "quantity": 1}]
        )
        wait_for(
            lambda: (
                Run.objects.filter(workflow__kind="system", status__in=FINISHED).count()
                >= len(EXPECTED)
            ),
            timeout=60,
        )

    runs = list(Run.objects.filter(workflow__kind="system").select_related("workflow"))
    assert {r.workflow.system_key for r in runs} == EXPECTED
    assert {r.status for r in runs} == {Run.Status.SUCCEEDED}
    assert set(StepRun.objects.filter(run__in=runs).values_list("attempts", flat=True)) == {1}
    assert SystemStatistic.objects.filter(metric="subscriptions.created").count() == 1
    assert ProviderNotification.objects.get().object_id == subscription.pk
    # One customer e-mail and one team e-mail per run, each delivered once.
    received = [(m.rcpt_tos, m.subject) for m in smtp_server.messages]
    assert len(received) == 6
    assert received.count((["jenny@example.com"], "Your subscription is confirmed")) == 1
    assert len({m.message_id for m in smtp_server.messages}) == 6
    assert sum(1 for to, _ in received if to == ["mona@example.com"]) == 3
