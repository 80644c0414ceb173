"""The customer admin writes through customer_create / customer_update, never around them."""

from __future__ import annotations

import json

from django.contrib.admin.utils import quote
from django.urls import reverse

from billing import services
from billing.models import Customer, Event
from tests import factories

ADD = "admin:billing_customer_add"


def change_url(customer: Customer) -> str:
    return reverse("admin:billing_customer_change", args=[quote(customer.pk)])


def form_data(customer: Customer, **overrides) -> dict:
    data = {
        "email": customer.email,
        "name": customer.name,
        "phone": customer.phone,
        "description": customer.description,
        "address": json.dumps(customer.address) if customer.address else "",
        "metadata": json.dumps(customer.metadata),
        "default_payment_method": customer.default_payment_method,
    }
    data.update(overrides)
    return data


def test_it_emits_customer_updated_with_the_previous_email(client, sam, live):
    customer = factories.customer(live, email="old@example.com", name="Jenny")
    mark = factories.event_mark()
    client.force_login(sam)
    response = client.post(change_url(customer), form_data(customer, email="new@example.com"))
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.email == "new@example.com"
    [event] = factories.new_events(mark)
    assert event.type == "customer.updated"
    assert event.environment == live
    assert event.data["previous_attributes"] == {"email": "old@example.com"}
    assert event.data["object"]["email"] == "new@example.com"


def test_it_emits_nothing_when_nothing_changed(client, sam, live):
    customer = factories.customer(live, email="same@example.com", metadata={"plan": "gold"})
    mark = factories.event_mark()
    client.force_login(sam)
    assert client.post(change_url(customer), form_data(customer)).status_code == 302
    assert factories.new_events(mark) == []


def test_it_removes_a_metadata_key_the_form_no_longer_has(client, sam, live):
    customer = factories.customer(live, metadata={"plan": "gold", "tier": "2"})
    mark = factories.event_mark()
    client.force_login(sam)
    client.post(change_url(customer), form_data(customer, metadata='{"plan": "platinum"}'))
    customer.refresh_from_db()
    assert customer.metadata == {"plan": "platinum"}
    [event] = factories.new_events(mark, "customer.updated")
    assert event.data["previous_attributes"] == {"metadata": {"plan": "gold", "tier": "2"}}


def test_it_shows_a_service_error_on_the_field_and_writes_nothing(client, sam, live):
    customer = factories.customer(live, email="keep@example.com", address={"country": "FR"})
    mark = factories.event_mark()
    client.force_login(sam)
    response = client.post(
        change_url(customer),
        form_data(customer, email="changed@example.com", address='{"country": "France"}'),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "address" in errors
    assert "two-letter" in errors["address"][0]
    customer.refresh_from_db()
    assert customer.email == "keep@example.com"
    assert factories.new_events(mark) == []


def test_it_names_the_payment_method_field_in_its_error(client, sam, live):
    customer = factories.customer(live)
    client.force_login(sam)
    response = client.post(
        change_url(customer), form_data(customer, default_payment_method="pm_nonsense")
    )
    assert response.status_code == 200
    assert "default_payment_method" in response.context["adminform"].form.errors


def test_it_keeps_fields_no_service_changes_read_only(client, sam, live):
    customer = factories.customer(live)
    client.force_login(sam)
    response = client.get(change_url(customer))
    form = response.context["adminform"].form
    assert set(form.fields) == {
        "email",
        "name",
        "phone",
        "description",
        "address",
        "metadata",
        "default_payment_method",
    }
    client.post(change_url(customer), form_data(customer, balance="-999", deleted="on"))
    customer.refresh_from_db()
    assert (customer.balance, customer.deleted) == (0, False)


def test_it_creates_customers_through_customer_create(client, mona, live, sandbox):
    client.force_login(mona)
    client.post("/environment/switch/", {"environment": "sandbox"})
    mark = factories.event_mark()
    response = client.post(
        reverse(ADD),
        {"email": "fresh@example.com", "name": "Fresh", "address": '{"country": "de"}'},
    )
    assert response.status_code == 302
    customer = Customer.objects.get(email="fresh@example.com")
    assert customer.environment == sandbox
    assert customer.address["country"] == "DE"
    [event] = factories.new_events(mark)
    assert (event.type, event.object_id, event.environment) == (
        "customer.created",
        customer.pk,
        sandbox,
    )


def test_it_offers_only_this_environments_accounts_when_creating(client, mona, live, sandbox):
    mine = services.account_create(environment=live, name="Mine")
    theirs = services.account_create(environment=sandbox, name="Theirs")
    client.force_login(mona)
    choices = client.get(reverse(ADD)).context["adminform"].form.fields["account"].queryset
    assert list(choices) == [mine]
    response = client.post(reverse(ADD), {"email": "x@example.com", "account": theirs.pk})
    assert response.status_code == 200
    assert "account" in response.context["adminform"].form.errors
    assert not Customer.objects.filter(email="x@example.com").exists()


def test_it_lets_only_account_managers_and_up_create_customers(client, sam, vic, live):
    for user in (sam, vic):
        client.force_login(user)
        assert client.get(reverse(ADD)).status_code == 403
        assert client.post(reverse(ADD), {"email": "no@example.com"}).status_code == 403
    assert not Customer.objects.filter(email="no@example.com").exists()


def test_it_lets_viewers_look_but_not_change(client, vic, live):
    customer = factories.customer(live, email="look@example.com")
    mark = factories.event_mark()
    client.force_login(vic)
    page = client.get(change_url(customer))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    response = client.post(change_url(customer), form_data(customer, email="no@example.com"))
    assert response.status_code == 403
    customer.refresh_from_db()
    assert customer.email == "look@example.com"
    assert factories.new_events(mark) == []


def test_it_answers_404_when_a_sandbox_session_edits_a_live_customer(client, sam, live, sandbox):
    customer = factories.customer(live, email="live@example.com")
    client.force_login(sam)
    client.post("/environment/switch/", {"environment": "sandbox"})
    response = client.post(change_url(customer), form_data(customer, email="stolen@example.com"))
    assert response.status_code == 404
    customer.refresh_from_db()
    assert customer.email == "live@example.com"
    assert not Event.objects.filter(type="customer.updated").exists()
