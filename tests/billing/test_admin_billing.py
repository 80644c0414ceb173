"""Billing admin pages: who sees them, and that each environment sees only its own rows."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from billing import services
from billing.models import Invoice
from tests import factories

MODELS = [
    "account",
    "customer",
    "product",
    "price",
    "subscription",
    "invoice",
    "paymentintent",
    "charge",
    "refund",
    "dispute",
    "checkoutsession",
    "event",
]


def world(environment, tag: str) -> dict:
    """One of every billing object in `environment`, made through the services."""
    account = services.account_create(environment=environment, name=f"{tag} Connected")
    customer = factories.customer(
        environment,
        email=f"{tag}@example.com",
        name=f"{tag} Customer",
        address={"country": "FR"},
        default_payment_method="pm_card_visa",
    )
    price = factories.price(environment, name=f"{tag} Plan")
    subscription = services.subscription_create(
        customer=customer,
        items=[{"price": price, "quantity": 1}],
        default_payment_method="pm_card_visa",
    )
    invoice = subscription.latest_invoice
    refunded = factories.paid_charge(environment, customer=customer)
    refund = services.refund_create(charge=refunded, amount=1000)
    disputed = factories.paid_charge(environment, customer=customer)
    dispute = services.dispute_create(charge=disputed)
    one_time = factories.price(environment, interval="", name=f"{tag} Setup")
    session = services.checkout_session_create(
        environment=environment, mode="payment", line_items=[{"price": one_time, "quantity": 1}]
    )
    return {
        "account": account,
        "customer": customer,
        "product": price.product,
        "price": price,
        "subscription": subscription,
        "invoice": invoice,
        "paymentintent": refunded.payment_intent,
        "charge": refunded,
        "refund": refund,
        "dispute": dispute,
        "checkoutsession": session,
    }


def changelist(model: str) -> str:
    return reverse(f"admin:billing_{model}_changelist")


def change(model: str, obj) -> str:
    return reverse(f"admin:billing_{model}_change", args=[quote(obj.pk)])


def switch(client, slug: str) -> None:
    assert client.post("/environment/switch/", {"environment": slug}).status_code == 302


@pytest.mark.parametrize("model", MODELS)
def test_it_shows_every_billing_list_to_every_role(
    client, model, alice, dave, mona, sam, vic, live
):
    for user in (alice, dave, mona, sam, vic):
        client.force_login(user)
        assert client.get(changelist(model)).status_code == 200, user.username


@pytest.mark.parametrize("model", MODELS)
def test_it_refuses_billing_lists_to_staff_without_a_role(client, model, olga, live):
    client.force_login(olga)
    assert client.get(changelist(model)).status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_it_sends_anonymous_visitors_to_login(client, model, live):
    response = client.get(changelist(model))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_opens_each_object_of_the_current_environment(client, vic, live):
    objects = world(live, "live")
    client.force_login(vic)
    for model, obj in objects.items():
        response = client.get(change(model, obj))
        assert response.status_code == 200, model
        assert obj.pk in response.content.decode()


def test_it_lists_only_the_sandbox_rows_in_a_sandbox_session(client, vic, live, sandbox):
    live_objects = world(live, "live")
    sandbox_objects = world(sandbox, "sandbox")
    client.force_login(vic)
    switch(client, "sandbox")
    for model in MODELS:
        rows = list(client.get(changelist(model)).context["cl"].result_list)
        assert rows, model
        assert {row.environment_id for row in rows} == {sandbox.pk}, model
    for model, obj in live_objects.items():
        listed = client.get(changelist(model)).content.decode()
        assert obj.pk not in listed, model
        assert sandbox_objects[model].pk in listed, model


def test_it_answers_404_for_a_live_object_from_a_sandbox_session(client, alice, live, sandbox):
    live_objects = world(live, "live")
    client.force_login(alice)
    switch(client, "sandbox")
    for model, obj in live_objects.items():
        assert client.get(change(model, obj)).status_code == 404, model
        history = reverse(f"admin:billing_{model}_history", args=[quote(obj.pk)])
        assert client.get(history).status_code == 404, model


def test_it_lists_only_live_rows_in_a_live_session(client, vic, live, sandbox):
    world(live, "live")
    sandbox_objects = world(sandbox, "sandbox")
    client.force_login(vic)
    for model, obj in sandbox_objects.items():
        response = client.get(changelist(model))
        assert {row.environment_id for row in response.context["cl"].result_list} == {live.pk}
        assert client.get(change(model, obj)).status_code == 404, model


def test_it_finds_customers_by_email_name_and_id(client, vic, live):
    objects = world(live, "live")
    factories.customer(live, email="someone.else@example.com", name="Someone Else")
    client.force_login(vic)
    customer = objects["customer"]
    for term in ("live@example.com", "live Customer", customer.pk):
        rows = list(client.get(changelist("customer"), {"q": term}).context["cl"].result_list)
        assert rows == [customer], term


def test_it_finds_charges_and_invoices_by_customer_email(client, vic, live):
    objects = world(live, "live")
    client.force_login(vic)
    charges = client.get(changelist("charge"), {"q": "live@example.com"}).context["cl"]
    assert objects["charge"] in list(charges.result_list)
    invoices = client.get(changelist("invoice"), {"q": "live@example.com"}).context["cl"]
    assert list(invoices.result_list) == [objects["invoice"]]


def test_it_filters_invoices_by_status_and_currency(client, vic, live):
    objects = world(live, "live")
    draft = services.invoice_create(
        customer=objects["customer"],
        lines=[{"amount": 700, "currency": "usd", "description": "Extra"}],
    )
    client.force_login(vic)
    drafts = client.get(changelist("invoice"), {"status__exact": "draft"}).context["cl"]
    assert list(drafts.result_list) == [draft]
    paid = client.get(changelist("invoice"), {"status__exact": "paid"}).context["cl"]
    assert {i.status for i in paid.result_list} == {Invoice.Status.PAID}
    usd = client.get(changelist("invoice"), {"currency": "usd"}).context["cl"]
    assert set(usd.result_list) == {draft, objects["invoice"]}


def test_it_offers_only_this_environments_accounts_in_the_account_filter(
    client, vic, live, sandbox
):
    live_account = services.account_create(environment=live, name="Live Co")
    sandbox_account = services.account_create(environment=sandbox, name="Sandbox Co")
    factories.customer(live, account=live_account, email="connected@example.com")
    client.force_login(vic)
    page = client.get(changelist("customer")).content.decode()
    assert live_account.pk in page
    assert sandbox_account.pk not in page
    filtered = client.get(changelist("customer"), {"account__id__exact": live_account.pk})
    assert [c.email for c in filtered.context["cl"].result_list] == ["connected@example.com"]


def test_it_shows_subscription_items_and_invoice_lines_read_only(client, alice, live):
    objects = world(live, "live")
    client.force_login(alice)
    sub_page = client.get(change("subscription", objects["subscription"]))
    item = objects["subscription"].items.get()
    assert item.pk in sub_page.content.decode()
    inline = sub_page.context["inline_admin_formsets"][0]
    assert not inline.has_add_permission and not inline.has_change_permission
    inv_page = client.get(change("invoice", objects["invoice"]))
    line = objects["invoice"].lines.get()
    assert line.pk in inv_page.content.decode()


def test_it_never_edits_or_deletes_billing_objects_directly(client, alice, live):
    objects = world(live, "live")
    client.force_login(alice)
    product = objects["product"]
    response = client.post(change("product", product), {"name": "Hacked", "active": ""})
    assert response.status_code == 403
    product.refresh_from_db()
    assert product.name == "live Plan"
    for model in ("customer", "charge", "invoice", "subscription"):
        delete = reverse(f"admin:billing_{model}_delete", args=[quote(objects[model].pk)])
        assert client.post(delete, {"post": "yes"}).status_code == 403, model
    assert client.get(reverse("admin:billing_charge_add")).status_code == 403
