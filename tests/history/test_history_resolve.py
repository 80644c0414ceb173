"""A resolve is in the run's history as the person or API key that resolved it (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from history.models import RunEvent
from tests import factories
from tests.api_client import api_for
from workflows.models import Run

pytestmark = pytest.mark.postgres


@pytest.fixture
def failed_run(flaky_workflow, alice, live):
    run = factories.run_executed(flaky_workflow, customer=factories.customer(live), user=alice)
    assert run.status == Run.Status.FAILED
    return run


def last_change(run: Run) -> RunEvent:
    return RunEvent.objects.filter(pgh_obj_id=run.pk).order_by("-pgh_id").first()


def test_a_resolve_on_the_run_page_is_recorded_as_the_person(failed_run, mona):
    client = Client()
    client.force_login(mona)
    client.post(reverse("runs:resolve", args=[failed_run.pk]), {"note": "Done by hand."})
    event = last_change(failed_run)
    assert event.pgh_changes == {"status": ["failed", "resolved"]}
    assert event.pgh_context["actor"] == {"type": "user", "id": str(mona.pk), "name": "mona"}


def test_a_resolve_through_the_api_is_recorded_as_its_key(failed_run, live):
    response = api_for(live, "account_manager").post(
        f"/runs/{failed_run.pk}/resolve", {"note": "Done by hand."}
    )
    assert response.status_code == 200, response.content
    event = last_change(failed_run)
    assert event.pgh_changes == {"status": ["failed", "resolved"]}
    actor = event.pgh_context["actor"]
    assert actor["type"] == "api_key" and actor["name"].startswith("account_manager key")
