from __future__ import annotations

import io

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command

from backoffice.roles import Role, role_of
from billing.models import (
    Account,
    Charge,
    Customer,
    Dispute,
    Environment,
    Event,
    Invoice,
    PaymentIntent,
    Price,
    Refund,
    Subscription,
)


def row_counts() -> dict[str, int]:
    """Rows of every table; pghistory's own models are views over the event tables (written
    for PostgreSQL), counted through those tables."""
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label != "pghistory"
    }


@pytest.fixture
def seeded(db):
    call_command("seed_demo", stdout=io.StringIO())


def test_it_changes_nothing_when_run_twice(seeded):
    before = row_counts()
    events = list(Event.objects.values_list("id", flat=True))
    passwords = dict(User.objects.values_list("username", "password"))
    call_command("seed_demo", stdout=io.StringIO())
    assert row_counts() == before
    assert list(Event.objects.values_list("id", flat=True)) == events
    assert dict(User.objects.values_list("username", "password")) == passwords


def test_it_makes_live_and_a_sandbox(seeded):
    assert Environment.objects.get(slug="live").kind == Environment.Kind.LIVE
    assert Environment.objects.get(slug="sandbox").kind == Environment.Kind.SANDBOX
    assert Customer.objects.filter(environment__slug="sandbox").exists()


def test_it_makes_one_staff_user_per_role_with_the_printed_passwords(seeded):
    expected = {
        "admin": Role.ADMIN,
        "developer": Role.DEVELOPER,
        "manager": Role.ACCOUNT_MANAGER,
        "support": Role.SUPPORT,
        "viewer": Role.VIEWER,
    }
    for username, role in expected.items():
        user = authenticate(username=username, password=f"{username}-demo")
        assert user is not None, username
        assert user.is_staff
        assert role_of(user) == role


def test_it_makes_customers_in_several_countries(seeded):
    countries = {
        (c.address or {}).get("country")
        for c in Customer.objects.filter(environment__slug="live", account=None)
    }
    assert countries >= {"US", "CA", "FR", "DE", "IT", "GB", "JP"}


def test_it_makes_monthly_and_yearly_prices(seeded):
    intervals = set(
        Price.objects.filter(environment__slug="live").values_list("recurring_interval", flat=True)
    )
    assert {"month", "year"} <= intervals


def test_it_makes_active_cancelled_paid_and_failed_billing(seeded):
    live = {"environment__slug": "live"}
    statuses = set(Subscription.objects.filter(**live).values_list("status", flat=True))
    assert {Subscription.Status.ACTIVE, Subscription.Status.CANCELED} <= statuses
    assert Invoice.objects.filter(**live, status=Invoice.Status.PAID).exists()
    failed = PaymentIntent.objects.get(**live, last_payment_error__isnull=False)
    assert failed.last_payment_error["decline_code"] == "insufficient_funds"
    assert Event.objects.filter(**live, type="invoice.payment_failed").exists()
    assert Charge.objects.filter(**live, status=Charge.Status.FAILED).exists()


def test_it_makes_a_refund_and_a_dispute(seeded):
    assert Refund.objects.filter(environment__slug="live").count() == 1
    assert Dispute.objects.filter(environment__slug="live").count() == 1
    assert Event.objects.filter(type="refund.created").count() == 1
    assert Event.objects.filter(type="charge.dispute.created").count() == 1


def test_it_makes_a_connected_account_with_its_own_customers(seeded):
    account = Account.objects.get(name="Northwind Studio")
    customers = Customer.objects.filter(account=account)
    assert customers.count() == 2
    assert Event.objects.filter(account=account, type="customer.created").count() == 2
    assert Subscription.objects.filter(account=account).exists()
