"""Amounts in the billing admin read as money in the object's currency: "20.00 USD" in lists
(sorting by the amount), "20.00 USD (2000)" on detail pages. Through the admin pages, as Alice
(Admin), with objects made by the billing services."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from billing import services
from billing.models import Event
from tests import factories


@pytest.fixture
def admin_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def page(client: Client, name: str, *args, **query) -> str:
    response = client.get(reverse(f"admin:billing_{name}", args=args), query)
    assert response.status_code == 200
    return response.content.decode()


def test_price_list_shows_money_and_sorts_by_the_amount(admin_client, live):
    factories.price(live, unit_amount=2000, currency="usd", name="Pro")
    factories.price(live, unit_amount=150000, currency="jpy", name="Tokyo")
    factories.price(live, unit_amount=1234567, currency="gbp", name="London")
    factories.price(live, unit_amount=99, currency="eur", name="Tiny")

    body = page(admin_client, "price_changelist")
    assert "20.00 USD" in body
    assert "150,000 JPY" in body  # zero-decimal: yen are whole
    assert "12,345.67 GBP" in body  # grouped thousands
    assert "0.99 EUR" in body
    assert ">2000<" not in body  # the raw minor units are not a list column

    # The money column's own sort link (the header a person clicks) sorts by the amount.
    sort = re.search(r'column-unit_amount_money.*?<a href="\?o=([^"]+)"', body, re.S)
    assert sort, "the money column is sortable"
    ascending = page(admin_client, "price_changelist", o=sort.group(1))
    order = [ascending.index(t) for t in ("0.99 EUR", "20.00 USD", "150,000 JPY", "12,345.67 GBP")]
    assert order == sorted(order)
    descending = page(admin_client, "price_changelist", o=f"-{sort.group(1)}")
    order = [descending.index(t) for t in ("12,345.67 GBP", "150,000 JPY", "20.00 USD", "0.99 EUR")]
    assert order == sorted(order)


def test_price_detail_keeps_the_minor_units_beside_the_money(admin_client, live):
    price = factories.price(live, unit_amount=2000, currency="usd")
    body = page(admin_client, "price_change", quote(price.pk))
    assert "20.00 USD (2000)" in body


def test_charge_and_payment_intent_pages_show_money(admin_client, live):
    charge = factories.paid_charge(live, amount=123456, currency="usd")
    services.refund_create(charge=charge, amount=1000)

    listing = page(admin_client, "charge_changelist")
    assert "1,234.56 USD" in listing and "10.00 USD" in listing  # amount, amount refunded
    detail = page(admin_client, "charge_change", quote(charge.pk))
    assert "1,234.56 USD (123456)" in detail
    assert "10.00 USD (1000)" in detail

    intent_detail = page(admin_client, "paymentintent_change", quote(charge.payment_intent_id))
    assert "1,234.56 USD (123456)" in intent_detail
    assert "1,234.56 USD" in page(admin_client, "paymentintent_changelist")
    assert "10.00 USD" in page(admin_client, "refund_changelist")


def test_invoice_pages_show_totals_and_lines_as_money(admin_client, live):
    customer = factories.customer(live)
    invoice = services.invoice_create(
        customer=customer,
        lines=[{"amount": 250000, "currency": "jpy", "description": "Consulting"}],
    )
    assert "250,000 JPY" in page(admin_client, "invoice_changelist")
    detail = page(admin_client, "invoice_change", quote(invoice.pk))
    total = re.search(r'field-total_detail.*?<div class="readonly">(.*?)</div>', detail, re.S)
    assert total and total.group(1) == "250,000 JPY (250000)"
    assert "field-amount_detail" in detail  # the invoice line, in the inline
    assert detail.count("250,000 JPY (250000)") >= 3  # subtotal, total, the line


def test_an_events_page_sums_up_its_amounts_as_money(admin_client, live):
    charge = factories.paid_charge(live, amount=5000, currency="eur")
    event = Event.objects.filter(object_id=charge.pk, type="charge.succeeded").get()
    body = page(admin_client, "event_change", quote(event.pk))
    assert "amount: 50.00 EUR (5000)" in body


def test_a_customer_page_an_editor_opens_shows_the_balance_as_a_read_only_field(live, sam):
    customer = factories.customer(live)
    client = Client()
    client.force_login(sam)  # Customer Support may change customers: the form is editable
    body = page(client, "customer_change", quote(customer.pk))
    assert "field-balance_detail" in body
    assert 'name="balance"' not in body
