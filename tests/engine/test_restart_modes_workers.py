"""The three restart modes with real qcluster workers on PostgreSQL, checked by the ledger audit.

A run refunds 1.00 of a charge, then e-mails a reviewer who is not on the team: it fails at
`tell` with the refund done. Restarted

* from the failed step (the engine, as an operator's restart): the refund is kept, it
  happened once;
* from the start (the API): every step runs again under a new idempotency key, so billing
  refunds a second time; the ledger audit accepts the first refund's key from the attempt log;
* on the latest version (the run page): a fix published in version 2 cures the failure, and
  the refund is kept.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Event, Refund
from tests import factories
from tests.api_client import api_for
from tests.engine.test_restart_modes import publish, refund_then_tell
from tests.ledger import audit_ledger
from tests.workers import qclusters, wait_for
from workflows.engine.runs import run_start_manual
from workflows.inspector.audit import run_restart_audited
from workflows.models import Delivery, Run, RunAudit, StepRun

pytestmark = [pytest.mark.postgres, pytest.mark.workers]

FINISHED = [Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED]


def finished(run: Run) -> Run:
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=FINISHED).exists(), timeout=30)
    run.refresh_from_db()
    return run


def failed_at_tell(live, alice, mona) -> tuple[Run, object]:
    workflow = factories.workflow_active(live, refund_then_tell(), alice)
    charge = factories.paid_charge(live, amount=5000)
    run = run_start_manual(
        workflow=workflow, input={"charge": charge.pk, "reviewer": "pat"}, user=mona
    )
    run = finished(run)
    assert (run.status, run.error["step"]) == (Run.Status.FAILED, "tell")
    assert Refund.objects.filter(charge=charge).count() == 1
    return run, charge


def refund_events(run: Run) -> list[str]:
    """The keys of the `charge.refunded` events the run caused, oldest first."""
    return list(
        Event.objects.filter(caused_by_run_id=run.pk, type="charge.refunded")
        .order_by("created", "pk")
        .values_list("idempotency_key", flat=True)
    )


def test_from_the_failed_step_the_succeeded_refund_happens_once(
    transactional_db, live, alice, mona
):
    with qclusters(count=1, workers=1):
        run, charge = failed_at_tell(live, alice, mona)
        factories.user("pat", "Account Manager")  # the cause is fixed
        run_restart_audited(run=run, user=mona, mode="from_failed_step")
        run = finished(run)

    assert run.status == Run.Status.SUCCEEDED
    report = audit_ledger(live)
    assert report.keys_superseded == []
    assert Refund.objects.filter(charge=charge).count() == 1
    assert refund_events(run) == [f"{run.pk}/refund/"]
    assert StepRun.objects.get(run=run, step_id="refund").attempts == 1
    assert Delivery.objects.filter(kind="email", status="sent").count() == 1


def test_from_the_start_the_succeeded_refund_happens_again_under_a_new_key(
    transactional_db, live, alice, mona
):
    with qclusters(count=1, workers=1):
        run, charge = failed_at_tell(live, alice, mona)
        factories.user("pat", "Account Manager")
        response = api_for(live).post(f"/runs/{run.pk}/restart", {"mode": "from_start"})
        assert response.status_code == 200, response.content
        run = finished(run)

    assert run.status == Run.Status.SUCCEEDED
    report = audit_ledger(live)
    first, again = f"{run.pk}/refund/", f"{run.pk}/refund//restart-1"
    assert report.keys_superseded == [(run.pk, "refund", "", first)]
    # Billing applied the refund a second time: a new key is a new request.
    assert Refund.objects.filter(charge=charge).count() == 2
    assert refund_events(run) == [first, again]
    refund = StepRun.objects.get(run=run, step_id="refund")
    assert [(a["restart"], a["status"]) for a in refund.attempt_log] == [
        (0, "succeeded"),
        (1, "succeeded"),
    ]
    assert Delivery.objects.filter(kind="email", status="sent").count() == 1
    assert RunAudit.objects.get(run=run).api_key is not None


def test_on_the_latest_version_a_published_fix_cures_the_failure(
    transactional_db, live, alice, mona
):
    with qclusters(count=1, workers=1):
        run, charge = failed_at_tell(live, alice, mona)
        # Nobody joins the team: the fix is the workflow's, published as version 2.
        publish(run.workflow, refund_then_tell(recipient="mona"), alice)
        client = Client()
        client.force_login(mona)
        preview = client.get(
            reverse("runs:restart_preview", args=[run.pk]), {"mode": "latest_version"}
        )
        assert 'data-step="refund" data-plan="kept"' in preview.content.decode()
        response = client.post(reverse("runs:restart", args=[run.pk]), {"mode": "latest_version"})
        assert response.status_code == 302
        run = finished(run)

    assert run.status == Run.Status.SUCCEEDED
    assert run.version.number == 2
    audit_ledger(live)
    assert Refund.objects.filter(charge=charge).count() == 1
    assert refund_events(run) == [f"{run.pk}/refund/"]
    tell = StepRun.objects.get(run=run, step_id="tell")
    assert [(a["restart"], a["status"]) for a in tell.attempt_log] == [
        (0, "failed"),
        (1, "succeeded"),
    ]
    assert tell.output["recipients"] == [mona.email]
