"""The approval step with real `python manage.py qcluster` processes on PostgreSQL: a run
waiting for approval survives a killed cluster (kill -9), resumes once after it is approved
through the API, and its approver got one e-mail (a real SMTP server); and two approvers
deciding at the same moment decide once (real concurrent transactions)."""

from __future__ import annotations

import time

import pytest

from billing.models import Customer
from tests import factories
from tests.api_client import api_for
from tests.concurrency import race
from tests.engine.test_approval_step import approving, waiting
from tests.workers import qclusters, wait_for
from workflows.engine.runs import run_start_manual
from workflows.engine.sweep import sweep
from workflows.inspector.audit import run_decide_audited
from workflows.models import Approval, Run, RunAudit, StepRun

pytestmark = [pytest.mark.postgres]


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


@pytest.mark.workers
def test_an_approval_waits_across_a_cluster_kill_and_resumes_once_after_approval(
    transactional_db, live, alice, mona, smtp_server
):
    customer: Customer = factories.customer(live)
    workflow = factories.workflow_active(live, approving(approvers=["Account Manager"]), alice)
    env = {"EMAIL_URL": smtp_server.url}
    with qclusters(count=1, workers=1, env=env) as (first,):
        run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=alice)
        wait_for(lambda: status_of(run) == Run.Status.WAITING, timeout=30)
        wait_for(lambda: smtp_server.messages, timeout=10)
        first.kill()  # kill -9 while the run waits: no worker holds it
    run.refresh_from_db()
    assert (run.lease_owner, run.lease_expires_at) == ("", None)
    assert sweep()["runs"] == 0  # waiting for a decision, not due: nothing to resume

    with qclusters(count=1, workers=1, env=env):
        api = api_for(live, "account_manager")
        response = api.post(f"/runs/{run.pk}/approve", {"note": "go"})
        assert response.status_code == 200, response.content
        wait_for(lambda: status_of(run) == Run.Status.SUCCEEDED, timeout=30)
        sweep()  # later sweeps find nothing to resume: the run is not executed again
        time.sleep(1)

    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert steps["first"].attempts == 1
    assert steps["second"].attempts == 1
    assert steps["ok"].output["decision"] == "approved"
    customer.refresh_from_db()
    assert customer.metadata == {"first": "yes", "decision": "approved"}
    # One e-mail to each approver (the role's people: mona, and alice above it as Admin),
    # with a link to the run page.
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [alice.email, mona.email]
    assert f"/runs/{run.pk}/" in smtp_server.messages[0].body
    assert Approval.objects.filter(run=run).count() == 1


def test_two_approvers_deciding_at_once_decide_once(transactional_db, live, alice, mona, dave):
    run, _customer = waiting(live, alice, approvers=["mona", "dave"])
    people = iter([mona, dave])

    def decide() -> object:
        user = next(people)  # one each: mona approves while dave rejects
        return run_decide_audited(run=run, approve=user is mona, note="at once", user=user)

    results = race(2, decide)
    decided = [r for r in results if isinstance(r, Approval)]
    refused = [r for r in results if not isinstance(r, Approval)]
    assert len(decided) == 1 and len(refused) == 1
    assert refused[0].http_status == 409
    assert refused[0].message.startswith("Already ")
    request = Approval.objects.get(run=run)
    assert request.decision == decided[0].decision
    assert RunAudit.objects.filter(run=run, action__in=["approve", "reject"]).count() == 1
    assert status_of(run) == Run.Status.PENDING
