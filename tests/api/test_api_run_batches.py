"""`/api/v1/run_batches`: bulk restart and cancel as a job; the request's checks (each error names
the field as sent), roles, environments, Idempotency-Key, and the progress a GET shows.

Runs are made and executed by the engine in this process; the job (`batch_apply`) is called here
as the worker's task calls it (the workers: tests/inspector/test_run_batches_workers.py).
"""

from __future__ import annotations

import pytest

from tests import factories
from tests.api_client import api_for, error_of
from workflows.batches.jobs import batch_apply
from workflows.engine.runs import run_start_manual
from workflows.models import Run, RunAudit, RunBatch


@pytest.fixture
def failed(flaky_workflow, live):
    return [
        factories.run_executed(flaky_workflow, customer=factories.customer(live)) for _ in range(3)
    ]


@pytest.fixture
def manager(live):
    return api_for(live, role="account_manager")


def test_it_restarts_listed_runs_as_a_job_and_reports_progress(
    manager, failed, flaky_workflow, live
):
    pending = run_start_manual(
        workflow=flaky_workflow, input={"customer": factories.customer(live).pk}
    )
    ids = [r.pk for r in failed] + [pending.pk]
    response = manager.post("/run_batches", {"action": "restart", "runs": ids})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "run_batch" and body["status"] == "pending"
    assert (body["action"], body["mode"], body["total"], body["done"]) == (
        "restart",
        "from_failed_step",
        4,
        0,
    )
    assert Run.objects.filter(status=Run.Status.FAILED).count() == 3  # not in the request
    batch_apply(batch_id=body["id"], continue_with=None)
    body = manager.get(f"/run_batches/{body['id']}").json()
    assert (body["status"], body["total"], body["done"], body["skipped"], body["failed"]) == (
        "succeeded",
        4,
        3,
        1,
        0,
    )
    assert body["reasons"] == {"pending: only failed runs restart": 1}
    audits = RunAudit.objects.filter(action=RunAudit.Action.BULK_RESTART)
    assert audits.count() == 3 and {a.api_key_id for a in audits} == {
        RunBatch.objects.get().api_key_id
    }


def test_it_cancels_the_runs_matching_a_filter(manager, flaky_workflow, failed, live):
    pending = [
        run_start_manual(workflow=flaky_workflow, input={"customer": factories.customer(live).pk})
        for _ in range(2)
    ]
    response = manager.post(
        "/run_batches", {"action": "cancel", "filter": {"workflow": flaky_workflow.pk}}
    )
    assert response.status_code == 200, response.content
    assert response.json()["selection"]["filter"] == {"workflow": str(flaky_workflow.pk)}
    batch_apply(batch_id=response.json()["id"], continue_with=None)
    body = manager.get(f"/run_batches/{response.json()['id']}").json()
    assert (body["total"], body["done"]) == (2, 2)  # the failed runs are not a cancel's business
    assert set(Run.objects.filter(status="canceled").values_list("pk", flat=True)) == {
        r.pk for r in pending
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"action": "rerun", "runs": [1]}, "action"),
        ({"runs": [1]}, "action"),
        ({"action": "restart"}, "runs"),
        ({"action": "restart", "runs": [1], "filter": {}}, "runs"),
        ({"action": "restart", "runs": []}, "runs"),
        ({"action": "restart", "runs": "1,2"}, "runs"),
        ({"action": "restart", "runs": ["first"]}, "runs[0]"),
        ({"action": "restart", "runs": [True]}, "runs[0]"),
        ({"action": "restart", "runs": [2**64]}, "runs[0]"),
        ({"action": "restart", "filter": {"workflow": 2**64}}, "filter[workflow]"),
        ({"action": "cancel", "runs": [1], "mode": "from_start"}, "mode"),
        ({"action": "restart", "runs": [1], "mode": "sideways"}, "mode"),
        ({"action": "restart", "filter": []}, "filter"),
        ({"action": "restart", "filter": {"colour": "red"}}, "filter[colour]"),
        ({"action": "restart", "filter": {"status": "broken"}}, "filter[status]"),
        ({"action": "restart", "filter": {"workflow": "7"}}, "filter[workflow]"),
        ({"action": "restart", "filter": {"workflow": 999999}}, "filter[workflow]"),
        ({"action": "restart", "filter": {"event_type": 5}}, "filter[event_type]"),
        ({"action": "restart", "filter": {"created": 5}}, "filter[created]"),
        ({"action": "restart", "filter": {"created": {"gt": 5}}}, "filter[created][gt]"),
        ({"action": "restart", "filter": {"created": {"gte": -1}}}, "filter[created][gte]"),
        ({"action": "restart", "runs": [1], "colour": "red"}, "colour"),
    ],
)
def test_it_refuses_bad_requests_naming_the_field(manager, body, param):
    response = manager.post("/run_batches", body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert not RunBatch.objects.exists()


def test_listed_runs_must_be_the_keys_environments(manager, failed, sandbox, alice, flaky):
    other = factories.workflow_active(sandbox, factories.flaky_definition("Sb"), alice)
    theirs = factories.run_executed(other, customer=factories.customer(sandbox))
    response = manager.post(
        "/run_batches", {"action": "restart", "runs": [failed[0].pk, theirs.pk]}
    )
    assert response.status_code == 400
    assert error_of(response)["param"] == "runs[1]"
    batch = manager.post("/run_batches", {"action": "restart", "runs": [failed[0].pk]}).json()
    sandbox_key = api_for(sandbox, role="admin")
    assert sandbox_key.get(f"/run_batches/{batch['id']}").status_code == 404


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", False),
        ("support", False),
        ("account_manager", True),
        ("developer", True),
        ("admin", True),
    ],
)
def test_roles(live, failed, role, allowed):
    api = api_for(live, role=role)
    response = api.post("/run_batches", {"action": "restart", "runs": [failed[0].pk]})
    assert (response.status_code == 200) is allowed
    if not allowed:
        assert response.status_code == 403
    else:
        assert api.get(f"/run_batches/{response.json()['id']}").status_code == 200


def test_an_idempotency_key_makes_one_batch(manager, failed):
    body = {"action": "restart", "runs": [r.pk for r in failed]}
    first = manager.post("/run_batches", body, idempotency_key="bulk-1")
    again = manager.post("/run_batches", body, idempotency_key="bulk-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert RunBatch.objects.count() == 1
    other = manager.post("/run_batches", {**body, "action": "cancel"}, idempotency_key="bulk-1")
    assert other.status_code == 400
