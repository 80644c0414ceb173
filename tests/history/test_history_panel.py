"""The History panel on a workflow's builder page and a run's inspector page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from billing import services
from tests import factories
from workflows import services as workflow_services


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.postgres
def test_the_builder_page_shows_who_changed_the_workflow(live, alice, mona):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    workflow_services.workflow_deactivate(workflow=workflow, deactivated_by=mona)
    page = client_for(mona).get(reverse("workflows:builder", args=[workflow.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="history-panel"' in html
    assert "bf-history-actor-user" in html and ">mona<" in html
    assert "active → inactive" in html


@pytest.mark.postgres
def test_the_run_page_shows_its_status_transitions(live, alice, vic):
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    run = factories.run_executed(workflow, customer=factories.customer(live))
    html = client_for(vic).get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert 'id="history-panel"' in html
    assert "running → succeeded" in html
    assert "pending → running" in html


def test_the_panel_says_where_history_is_kept(live, alice):
    """On PostgreSQL it lists the changes; on SQLite (no triggers) it says history is kept on
    PostgreSQL instead of showing an empty list as if nothing had changed."""
    workflow = factories.workflow_active(live, factories.tag_by_hand_definition(), user=alice)
    html = client_for(alice).get(reverse("workflows:builder", args=[workflow.pk])).content.decode()
    if connection.vendor == "postgresql":
        assert 'id="history-entries"' in html
        assert 'id="history-not-recorded"' not in html
    else:
        assert 'id="history-not-recorded"' in html
        assert "recorded on PostgreSQL" in html


@pytest.mark.postgres
def test_a_billing_admin_change_page_shows_the_panel(live, alice):
    """templates/admin/billing/change_form.html, every billing object's admin page."""
    customer = factories.customer(live, name="Ada")
    services.customer_update(customer=customer, changes={"name": "Grace"})
    page = client_for(alice).get(reverse("admin:billing_customer_change", args=[customer.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="history-panel"' in html
    assert "Ada → Grace" in html
