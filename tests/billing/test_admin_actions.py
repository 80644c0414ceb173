"""Admin actions call the billing services: the resulting statuses and events prove it."""

from __future__ import annotations

from django.contrib.messages import get_messages
from django.urls import reverse

from billing import services
from billing.models import Charge, CheckoutSession, Invoice, PaymentIntent, Subscription
from tests import factories


def run_action(client, model: str, action: str, *objects):
    return client.post(
        reverse(f"admin:billing_{model}_changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def draft_invoice(environment, amount: int = 2500):
    customer = factories.customer(environment, default_payment_method="pm_card_visa")
    return services.invoice_create(
        customer=customer,
        lines=[{"amount": amount, "currency": "usd", "description": "Consulting"}],
    )


def active_subscription(environment):
    return factories.SubscriptionFactory(
        environment=environment, default_payment_method="pm_card_visa"
    )


def test_it_refunds_a_charge_for_support(client, sam, live):
    charge = factories.paid_charge(live, amount=4200)
    mark = factories.event_mark()
    client.force_login(sam)
    response = run_action(client, "charge", "refund_charges", charge)
    assert response.status_code == 302
    charge.refresh_from_db()
    assert charge.refunded and charge.amount_refunded == 4200
    assert factories.new_event_types(mark) == ["charge.refunded", "refund.created"]
    assert "Charges refunded: 1." in messages_of(response)


def test_it_reports_a_refund_the_service_refuses(client, sam, live):
    charge = factories.paid_charge(live)
    services.refund_create(charge=charge)
    mark = factories.event_mark()
    client.force_login(sam)
    response = run_action(client, "charge", "refund_charges", charge)
    [message] = messages_of(response)
    assert message.startswith(f"{charge.pk}: ")
    assert factories.new_events(mark) == []


def test_it_does_not_let_viewers_refund(client, vic, live):
    charge = factories.paid_charge(live)
    mark = factories.event_mark()
    client.force_login(vic)
    page = client.get(reverse("admin:billing_charge_changelist"))
    assert page.context["action_form"] is None  # no action is offered at all
    run_action(client, "charge", "refund_charges", charge)
    charge.refresh_from_db()
    assert not charge.refunded
    assert factories.new_events(mark) == []


def test_it_cancels_a_subscription_for_account_managers(client, mona, live):
    subscription = active_subscription(live)
    mark = factories.event_mark()
    client.force_login(mona)
    run_action(client, "subscription", "cancel_subscriptions", subscription)
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert factories.new_event_types(mark) == ["customer.subscription.deleted"]


def test_it_does_not_let_support_cancel_subscriptions(client, sam, live):
    subscription = active_subscription(live)
    client.force_login(sam)
    run_action(client, "subscription", "cancel_subscriptions", subscription)
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


def test_it_finalizes_and_pays_an_invoice(client, mona, live):
    invoice = draft_invoice(live)
    client.force_login(mona)
    mark = factories.event_mark()
    run_action(client, "invoice", "finalize_invoices", invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN
    assert "invoice.finalized" in factories.new_event_types(mark)
    mark = factories.event_mark()
    run_action(client, "invoice", "pay_invoices", invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert "invoice.paid" in factories.new_event_types(mark)


def test_it_voids_an_open_invoice(client, mona, live):
    invoice = services.invoice_finalize(invoice=draft_invoice(live))
    mark = factories.event_mark()
    client.force_login(mona)
    run_action(client, "invoice", "void_invoices", invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.VOID
    assert factories.new_event_types(mark) == ["invoice.voided"]


def test_it_reports_an_invoice_in_the_wrong_state_and_changes_nothing(client, mona, live):
    invoice = draft_invoice(live)
    mark = factories.event_mark()
    client.force_login(mona)
    response = run_action(client, "invoice", "void_invoices", invoice)
    [message] = messages_of(response)
    assert "only an open invoice can be voided" in message
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.DRAFT
    assert factories.new_events(mark) == []


def test_it_cancels_a_payment_intent(client, mona, live):
    intent = services.payment_intent_create(environment=live, amount=1500, currency="usd")
    mark = factories.event_mark()
    client.force_login(mona)
    run_action(client, "paymentintent", "cancel_payment_intents", intent)
    intent.refresh_from_db()
    assert intent.status == PaymentIntent.Status.CANCELED
    assert factories.new_event_types(mark) == ["payment_intent.canceled"]


def test_it_expires_a_checkout_session(client, mona, live):
    price = factories.price(live, interval="")
    session = services.checkout_session_create(
        environment=live, mode="payment", line_items=[{"price": price, "quantity": 2}]
    )
    mark = factories.event_mark()
    client.force_login(mona)
    run_action(client, "checkoutsession", "expire_sessions", session)
    session.refresh_from_db()
    assert session.status == CheckoutSession.Status.EXPIRED
    assert factories.new_event_types(mark) == ["checkout.session.expired"]


def test_it_ignores_another_environments_rows_in_an_action(client, alice, live, sandbox):
    charge = factories.paid_charge(live)
    mark = factories.event_mark()
    client.force_login(alice)
    client.post("/environment/switch/", {"environment": "sandbox"})
    run_action(client, "charge", "refund_charges", charge)
    assert Charge.objects.get(pk=charge.pk).refunded is False
    assert factories.new_events(mark) == []


def test_it_refuses_actions_to_anonymous_visitors(client, live):
    charge = factories.paid_charge(live)
    response = run_action(client, "charge", "refund_charges", charge)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    charge.refresh_from_db()
    assert not charge.refunded
