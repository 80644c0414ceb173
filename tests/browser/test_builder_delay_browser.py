"""The builder's delay step in headless Chromium: Mona adds a delay from the step picker, sets
it to three days in its side panel, then to a time that is not one and sees the engine's error
next to the field."""

from __future__ import annotations

import re

import pytest

from tests import factories
from tests.browser.test_builder_browser import _add_step, _save
from workflows import services
from workflows.models import Workflow
from workflows.services import workflow_definition

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_account_manager_adds_and_edits_a_delay_step(new_page):
    from playwright.sync_api import expect

    live = factories.environment("live")
    mona = factories.user("mona", "Account Manager")
    workflow = services.workflow_create(
        environment=live, definition=factories.region_workflow_definition(), created_by=mona
    )
    page = new_page(mona)
    page.goto(f"/admin/workflows/{workflow.pk}/")
    _add_step(page, position=1, kind="delay")
    page.fill("#id_seconds", "259200")
    _save(page)
    expect(page.locator("#wf-node-wait")).to_contain_text("Wait 3 days")
    steps = workflow_definition(Workflow.objects.get(pk=workflow.pk))["steps"]
    assert steps[1] == {"id": "wait", "type": "delay", "seconds": 259200}

    page.fill("#id_until", "tomorrow morning")
    page.click("#wf-save")
    field = page.locator("#wf-field-until")
    expect(field).to_have_class(re.compile("wf-field-error"))
    expect(field.locator(".wf-errors")).to_contain_text("Must be an ISO timestamp")
