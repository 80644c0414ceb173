"""The test factories create through the services: each object carries what its service records.

A factory that wrote rows directly (Model.objects.create) would make objects without their
events, versions or hashed passwords, and these tests would fail.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate

from billing.models import Event
from tests.factories import (
    CustomerFactory,
    EnvironmentFactory,
    PaidChargeFactory,
    PriceFactory,
    ProductFactory,
    SubscriptionFactory,
    UserFactory,
    WorkflowFactory,
)

pytestmark = pytest.mark.django_db


def recorded(obj) -> list[str]:
    """The types of the events the billing services recorded for `obj`."""
    return sorted(Event.objects.filter(object_id=obj.pk).values_list("type", flat=True))


def test_it_creates_a_customer_with_its_created_event():
    customer = CustomerFactory(email="ana@example.com")
    assert customer.email == "ana@example.com"
    assert recorded(customer) == ["customer.created"]


def test_it_gives_each_customer_its_own_email_by_default():
    first, second = CustomerFactory(), CustomerFactory()
    assert first.email != second.email


def test_it_creates_a_product_with_its_created_event():
    assert recorded(ProductFactory(name="Gold")) == ["product.created"]


def test_it_creates_a_price_and_its_product_through_the_services():
    price = PriceFactory(unit_amount=900)
    assert price.unit_amount == 900
    assert recorded(price) == ["price.created"]
    assert recorded(price.product) == ["product.created"]


def test_it_creates_a_paid_charge_with_its_succeeded_event():
    charge = PaidChargeFactory(amount=1234)
    assert charge.amount == 1234
    assert recorded(charge) == ["charge.succeeded"]


def test_it_creates_a_subscription_in_one_environment_with_its_created_event():
    sandbox = EnvironmentFactory(slug="sandbox")
    subscription = SubscriptionFactory(environment=sandbox)
    assert "customer.subscription.created" in recorded(subscription)
    assert subscription.customer.environment == sandbox
    assert recorded(subscription.customer) == ["customer.created"]
    assert recorded(subscription.items.get().price) == ["price.created"]


def test_it_creates_a_user_whose_password_signs_in():
    user = UserFactory(username="rita", role="Viewer")
    assert authenticate(username="rita", password="password") == user
    assert list(user.groups.values_list("name", flat=True)) == ["Viewer"]


def test_it_creates_a_workflow_published_and_active_through_the_workflow_services():
    author = UserFactory()
    workflow = WorkflowFactory(created_by=author)
    assert workflow.status == "active"
    assert workflow.published_version.number == 1
    assert workflow.published_version.published_by == author


def test_it_leaves_a_workflow_a_draft_when_asked_not_to_publish():
    workflow = WorkflowFactory(publish=False)
    assert workflow.published_version is None
    assert workflow.draft_version is not None
