"""A billing object's admin page lists the workflow runs that touched it."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from tests import factories


def test_it_lists_the_runs_that_changed_a_customer_on_its_admin_page(live, alice, vic, flaky):
    flaky["fail"] = False  # the runs succeed: the page lists runs that changed the customer
    wf = factories.workflow_active(live, factories.flaky_definition("Tagger"), alice)
    customer = factories.customer(live)
    bystander = factories.customer(live, email="other@example.com")
    run = factories.run_executed(wf, customer=customer)
    other = factories.run_executed(wf, customer=bystander)
    client = Client()
    client.force_login(vic)
    body = client.get(reverse("admin:billing_customer_change", args=[customer.pk])).content
    section = body.decode().split('id="runs-touching"')[1].split("</fieldset>")[0]
    assert reverse("runs:detail", args=[run.pk]) in section
    assert reverse("runs:detail", args=[other.pk]) not in section
    assert f"?object_id={customer.pk}" in section
