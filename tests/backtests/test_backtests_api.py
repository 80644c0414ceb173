"""`POST /api/v1/workflows/{id}/backtests` and `GET /api/v1/backtests/{id}`: 202 with the
backtest, its report once the job ran (called here as the worker's task calls it), bad input
named, roles, environments, Idempotency-Key and the OpenAPI document."""

from __future__ import annotations

import pytest
from django.test import Client

from tests import factories
from tests.api_client import api_for, error_of
from tests.backtests.test_backtests import make_customer, segment_workflow_definition
from workflows.backtests.jobs import backtest_apply
from workflows.models import Backtest


@pytest.fixture
def workflow(live, alice):
    workflow = factories.workflow_active(live, segment_workflow_definition(), alice)
    for i in range(9):
        make_customer(live, i)
    return workflow


@pytest.fixture
def manager(live):
    return api_for(live, role="account_manager")


def test_it_starts_a_backtest_as_a_job_and_reports_it(manager, workflow):
    response = manager.post(f"/workflows/{workflow.pk}/backtests", {"version": "published"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["object"], body["status"], body["version"], body["writes"]) == (
        "backtest",
        "queued",
        1,
        "none",
    )
    assert body["until"] - body["since"] == 30 * 86400
    assert body["steps"]["tag_eu"] == {"would_run": 0, "amounts": {}}
    backtest = Backtest.objects.get(pk=body["id"])
    assert backtest.api_key is not None and backtest.user is None
    backtest_apply(backtest_id=body["id"], continue_with=None)
    body = manager.get(f"/backtests/{body['id']}").json()
    assert (body["status"], body["events_total"], body["events_scanned"]) == ("done", 9, 9)
    assert body["would_start"] == 3  # customers 0, 3 and 6 are in the trial segment
    assert body["paths"] == {"stopped at has_email": 1, "Europe": 1, "Everyone else": 1}
    assert body["steps"]["has_email"] == {"would_run": 3, "amounts": {}}
    assert {s["route"] for s in body["samples"]} == set(body["paths"])
    assert body["finished_at"] is not None


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"since": "last week"}, "since", "must be a Unix time in seconds or an ISO 8601"),
        ({"since": 1_790_000_000, "until": 1_780_000_000}, "until", "must be after `since`"),
        ({"since": 2_000_000_000}, "since", "is in the future"),
        ({"version": 3}, "version", "No such version: 3"),
        ({"version": "draft"}, "version", "has no draft"),
        ({"range": "30d"}, "range", "Unknown field 'range'"),
    ],
)
def test_bad_input_is_refused_naming_the_field(manager, workflow, body, param, words):
    response = manager.post(f"/workflows/{workflow.pk}/backtests", body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["param"] == param and words in error["message"], error
    assert not Backtest.objects.exists()


def test_a_range_past_the_retention_window_is_refused(manager, workflow, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "EVENT_RETENTION_DAYS": 7}
    error = error_of(manager.post(f"/workflows/{workflow.pk}/backtests", {}))
    assert error["param"] == "since" and "retention window" in error["message"]


def test_a_manual_workflow_cannot_be_backtested(manager, live, alice, flaky):
    manual = factories.workflow_active(live, factories.flaky_definition(), alice)
    error = error_of(manager.post(f"/workflows/{manual.pk}/backtests", {}))
    assert error["param"] == "version" and "replays stored events" in error["message"]


def test_another_environment_s_workflow_and_backtest_are_404(manager, workflow, sandbox):
    other = api_for(sandbox, role="admin")
    assert other.post(f"/workflows/{workflow.pk}/backtests", {}).status_code == 404
    body = manager.post(f"/workflows/{workflow.pk}/backtests", {}).json()
    assert other.get(f"/backtests/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("role", "may_start", "may_read"),
    [
        ("viewer", False, True),
        ("support", False, True),
        ("account_manager", True, True),
        ("developer", True, True),
        ("admin", True, True),
    ],
)
def test_roles(live, workflow, manager, role, may_start, may_read):
    api = api_for(live, role=role)
    response = api.post(f"/workflows/{workflow.pk}/backtests", {})
    assert response.status_code == (202 if may_start else 403)
    started = manager.post(f"/workflows/{workflow.pk}/backtests", {}).json()
    assert api.get(f"/backtests/{started['id']}").status_code == (200 if may_read else 403)


def test_an_idempotency_key_makes_one_backtest(manager, workflow):
    first = manager.post(f"/workflows/{workflow.pk}/backtests", {}, idempotency_key="bt-1")
    again = manager.post(f"/workflows/{workflow.pk}/backtests", {}, idempotency_key="bt-1")
    assert again.status_code == 202 and again.json() == first.json()
    assert Backtest.objects.count() == 1


def test_the_openapi_document_describes_backtests(db):
    spec = Client().get("/api/v1/openapi.json").json()
    start = spec["paths"]["/api/v1/workflows/{workflow_id}/backtests"]["post"]
    assert "202" in start["responses"]
    assert "/api/v1/backtests/{backtest_id}" in spec["paths"]
    request = spec["components"]["schemas"]["BacktestIn"]  # drawn as BacktestRequest
    assert set(request["properties"]) == {"since", "until", "version"}
    report = spec["components"]["schemas"]["BacktestOut"]
    assert {"would_start", "paths", "steps", "samples", "events_scanned"} <= set(
        report["properties"]
    )
