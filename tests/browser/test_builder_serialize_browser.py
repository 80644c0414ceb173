"""The trigger's "Run one at a time per" setting in headless Chromium: Mona picks "Customer"
and a max wait in the trigger's side panel, the card says so, and a max wait of 0 is refused
next to its field."""

from __future__ import annotations

import re

import pytest

from tests import factories
from workflows import services
from workflows.models import Workflow
from workflows.services import workflow_definition

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_account_manager_runs_a_workflow_one_at_a_time_per_customer(new_page):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = services.workflow_create(
        environment=live, definition=factories.region_workflow_definition(), created_by=mona
    )
    page = new_page(mona)
    page.goto(f"/admin/workflows/{workflow.pk}/trigger/")
    page.select_option("#id_serialize_by", "customer")
    page.fill("#id_serialize_max_wait_minutes", "15")
    page.click("#wf-trigger-save")
    expect(page.locator("#wf-trigger .wf-serialized")).to_contain_text(
        "One run at a time per customer, in event order; a failed run holds it 15 min at most"
    )
    trigger = workflow_definition(Workflow.objects.get(pk=workflow.pk))["trigger"]
    assert (trigger["serialize_by"], trigger["serialize_max_wait_minutes"]) == ("customer", 15)

    page.fill("#id_serialize_max_wait_minutes", "0")
    page.click("#wf-trigger-save")
    field = page.locator("#wf-field-serialize_max_wait_minutes")
    expect(field).to_have_class(re.compile("wf-field-error"))
    expect(field.locator(".wf-errors")).to_contain_text("must be a positive number of minutes")
