"""An approval's decision is in the run's history as the person or API key that decided, with
the run's waiting -> pending wake-up (PostgreSQL: the history is written by triggers)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.api_client import api_for
from tests.engine.test_approval_step import waiting
from tests.engine.test_engine_executor import committed

pytestmark = pytest.mark.postgres


def decided_entry(api, run) -> dict:
    entries = api.get("/history", object=f"run:{run.pk}", limit=100).json()["data"]
    approvals = [e for e in entries if e["object"]["type"] == "approval"]
    return next(e for e in approvals if "decision" in e["changes"])


def test_a_decision_on_the_run_page_is_in_the_runs_history_as_the_person(live, alice, mona):
    run, _customer = waiting(live, alice)
    client = Client()
    client.force_login(mona)
    with committed():
        client.post(reverse("runs:decide", args=[run.pk]), {"decision": "reject", "note": "No"})
    entry = decided_entry(api_for(live, "viewer"), run)
    assert entry["changes"]["decision"] == ["pending", "rejected"]
    assert entry["actor"] == {"type": "user", "id": str(mona.pk), "name": "mona"}
    entries = api_for(live, "viewer").get("/history", object=f"run:{run.pk}").json()["data"]
    woken = [e for e in entries if e["object"]["type"] == "run"][0]
    assert woken["changes"] == {"status": ["waiting", "pending"]}
    assert woken["actor"]["name"] == "mona"


def test_a_decision_through_the_api_is_in_the_history_as_its_key(live, alice, mona):
    run, _customer = waiting(live, alice, approvers=["Account Manager"])
    with committed():
        response = api_for(live, "account_manager").post(f"/runs/{run.pk}/approve", {})
    assert response.status_code == 200, response.content
    entry = decided_entry(api_for(live, "viewer"), run)
    assert entry["changes"]["decision"] == ["pending", "approved"]
    assert entry["actor"]["type"] == "api_key"
    assert entry["actor"]["name"].startswith("account_manager key")
