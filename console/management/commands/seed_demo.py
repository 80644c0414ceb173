"""Demo data for a first look at the back office: `python manage.py seed_demo`.

Everything billing goes through the services with fixed idempotency keys ("seed:…"), so a second
run returns the first run's objects and writes nothing: no rows, no events.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from backoffice.roles import GROUP_NAMES, Role
from billing import services
from billing.models import Charge, Customer, Environment, Invoice, Price
from console.environments import live_environment
from workflows.system.catalogue import system_workflows_install

# (user name, role); the password is the user name + "-demo" (dev.py prints them).
DEMO_USERS: list[tuple[str, Role]] = [
    ("admin", Role.ADMIN),
    ("developer", Role.DEVELOPER),
    ("manager", Role.ACCOUNT_MANAGER),
    ("support", Role.SUPPORT),
    ("viewer", Role.VIEWER),
]

VISA = "pm_card_visa"
INSUFFICIENT_FUNDS = "pm_card_chargeDeclinedInsufficientFunds"

# (key, name, email, city, country, currency, default payment method)
CUSTOMERS = [
    ("us", "Avery Johnson", "avery.johnson@example.com", "Austin", "US", "usd", VISA),
    ("ca", "Camille Tremblay", "camille.tremblay@example.ca", "Montréal", "CA", "usd", VISA),
    ("fr", "Louise Martin", "louise.martin@example.fr", "Lyon", "FR", "eur", VISA),
    ("de", "Jonas Weber", "jonas.weber@example.de", "Berlin", "DE", "eur", INSUFFICIENT_FUNDS),
    ("it", "Giulia Rossi", "giulia.rossi@example.it", "Milano", "IT", "eur", VISA),
    ("gb", "Oliver Smith", "oliver.smith@example.co.uk", "Leeds", "GB", "gbp", VISA),
    ("jp", "Haruto Sato", "haruto.sato@example.jp", "Osaka", "JP", "jpy", VISA),
]


def demo_password(username: str) -> str:
    return f"{username}-demo"


class Command(BaseCommand):
    help = "Load demo data and demo users (idempotent: running it twice changes nothing)."

    def handle(self, *args: Any, **options: Any) -> None:
        # Every demo event is handed to the queue; one "Enqueued" line each drowns the summary.
        logging.getLogger("django-q").setLevel(logging.WARNING)
        self._users()
        live = live_environment()
        sandbox, _ = Environment.objects.get_or_create(
            slug="sandbox", defaults={"name": "Sandbox", "kind": Environment.Kind.SANDBOX}
        )
        # Before the demo data, so its events run the system workflows too (idempotent).
        for environment in (live, sandbox):
            system_workflows_install(environment=environment)
        self._live(live)
        self._connected_account(live)
        self._sandbox(sandbox)
        self.stdout.write(
            f"Demo data ready: {Customer.objects.filter(environment=live).count()} live customers, "
            f"{Customer.objects.filter(environment=sandbox).count()} sandbox customers."
        )

    def _users(self) -> None:
        for username, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                # Set once: a person who changed a demo password keeps it.
                user = User.objects.create_user(
                    username=username,
                    email=f"{username}@billflow.example",
                    password=demo_password(username),
                    is_staff=True,
                    is_superuser=role == Role.ADMIN,
                )
            group = Group.objects.get(name=GROUP_NAMES[role])
            if not user.groups.filter(pk=group.pk).exists():
                user.groups.add(group)

    def _customers(self, environment: Environment, prefix: str) -> dict[str, Customer]:
        customers = {}
        for key, name, email, city, country, currency, method in CUSTOMERS:
            customers[key] = services.customer_create(
                environment=environment,
                email=email,
                name=name,
                address={"city": city, "country": country},
                metadata={"demo": "true", "preferred_currency": currency},
                default_payment_method=method,
                idempotency_key=f"{prefix}:customer:{key}",
            )
        return customers

    def _catalogue(self, environment: Environment, prefix: str, account=None) -> dict[str, Price]:
        starter = services.product_create(
            environment=environment,
            account=account,
            name="Starter",
            description="For small teams getting started.",
            idempotency_key=f"{prefix}:product:starter",
        )
        pro = services.product_create(
            environment=environment,
            account=account,
            name="Pro",
            description="Everything in Starter, plus workflows and priority support.",
            idempotency_key=f"{prefix}:product:pro",
        )
        specs = [
            ("starter_monthly", starter, "usd", 900, "month", "Starter monthly"),
            ("starter_yearly", starter, "usd", 9000, "year", "Starter yearly"),
            ("pro_monthly", pro, "usd", 2900, "month", "Pro monthly"),
            ("pro_yearly", pro, "usd", 29000, "year", "Pro yearly"),
            ("pro_monthly_eur", pro, "eur", 2700, "month", "Pro monthly (EUR)"),
            ("starter_monthly_gbp", starter, "gbp", 800, "month", "Starter monthly (GBP)"),
        ]
        return {
            key: services.price_create(
                product=product,
                currency=currency,
                unit_amount=amount,
                recurring_interval=interval,
                nickname=nickname,
                idempotency_key=f"{prefix}:price:{key}",
            )
            for key, product, currency, amount, interval, nickname in specs
        }

    def _subscribe(self, customer: Customer, price: Price, key: str) -> Any:
        return services.subscription_create(
            customer=customer,
            items=[{"price": price, "quantity": 1}],
            default_payment_method=customer.default_payment_method,
            idempotency_key=f"seed:subscription:{key}",
        )

    def _one_off_invoice(
        self, customer: Customer, amount: int, currency: str, description: str, key: str
    ) -> Invoice:
        invoice = services.invoice_create(
            customer=customer,
            lines=[
                {"amount": amount, "currency": currency, "description": description, "quantity": 1}
            ],
            description=description,
            idempotency_key=f"seed:invoice:{key}",
        )
        invoice = services.invoice_finalize(invoice=invoice, idempotency_key=f"seed:finalize:{key}")
        return services.invoice_pay(
            invoice=invoice,
            payment_method=customer.default_payment_method,
            idempotency_key=f"seed:pay:{key}",
        )

    def _live(self, live: Environment) -> None:
        customers = self._customers(live, "seed")
        prices = self._catalogue(live, "seed")
        # Active subscriptions; their first invoices are paid with the customers' cards.
        self._subscribe(customers["us"], prices["pro_monthly"], "us-pro")
        self._subscribe(customers["ca"], prices["starter_yearly"], "ca-starter")
        self._subscribe(customers["fr"], prices["pro_monthly_eur"], "fr-pro")
        # A failed first invoice: the card has insufficient funds.
        self._subscribe(customers["de"], prices["pro_monthly_eur"], "de-pro")
        # A subscription that was cancelled.
        cancelled = self._subscribe(customers["gb"], prices["starter_monthly_gbp"], "gb-starter")
        services.subscription_cancel(
            subscription=cancelled, idempotency_key="seed:subscription-cancel:gb-starter"
        )
        # One-off invoices, paid; one is partly refunded, the other disputed.
        italy = self._one_off_invoice(customers["it"], 15000, "eur", "Onboarding workshop", "it")
        japan = self._one_off_invoice(customers["jp"], 12000, "jpy", "Setup fee", "jp")
        services.refund_create(
            charge=self._charge_of(italy),
            amount=5000,
            reason="requested_by_customer",
            idempotency_key="seed:refund:it",
        )
        services.dispute_create(
            charge=self._charge_of(japan), reason="fraudulent", idempotency_key="seed:dispute:jp"
        )

        # Something for the admin actions to act on: a draft invoice and an open checkout.
        services.invoice_create(
            customer=customers["us"],
            lines=[
                {"amount": 4500, "currency": "usd", "description": "Extra seats", "quantity": 1}
            ],
            description="Extra seats (draft)",
            idempotency_key="seed:invoice:us-draft",
        )
        setup = services.product_create(
            environment=live, name="Setup package", idempotency_key="seed:product:setup"
        )
        setup_price = services.price_create(
            product=setup,
            currency="usd",
            unit_amount=19900,
            nickname="Setup package",
            idempotency_key="seed:price:setup",
        )
        services.checkout_session_create(
            environment=live,
            mode="payment",
            line_items=[{"price": setup_price, "quantity": 1}],
            customer=customers["ca"],
            success_url="https://example.com/thanks",
            cancel_url="https://example.com/cart",
            idempotency_key="seed:checkout:ca-setup",
        )

    def _charge_of(self, invoice: Invoice) -> Charge:
        charge = Charge.objects.filter(invoice=invoice, status=Charge.Status.SUCCEEDED).first()
        if charge is None and invoice.payment_intent_id:
            charge = invoice.payment_intent.latest_charge
        if charge is None:
            raise RuntimeError(f"Demo invoice {invoice.id} has no successful charge.")
        return charge

    def _connected_account(self, live: Environment) -> None:
        account = services.account_create(
            environment=live,
            name="Northwind Studio",
            email="billing@northwind.example",
            country="FR",
            idempotency_key="seed:account:northwind",
        )
        product = services.product_create(
            environment=live,
            account=account,
            name="Studio membership",
            idempotency_key="seed:account:northwind:product",
        )
        price = services.price_create(
            product=product,
            currency="eur",
            unit_amount=4900,
            recurring_interval="month",
            nickname="Studio monthly",
            idempotency_key="seed:account:northwind:price",
        )
        for key, name, email, country in [
            ("1", "Élodie Bernard", "elodie.bernard@example.fr", "FR"),
            ("2", "Lukas Fischer", "lukas.fischer@example.de", "DE"),
        ]:
            customer = services.customer_create(
                environment=live,
                account=account,
                email=email,
                name=name,
                address={"country": country},
                default_payment_method=VISA,
                idempotency_key=f"seed:account:northwind:customer:{key}",
            )
            self._subscribe(customer, price, f"northwind-{key}")

    def _sandbox(self, sandbox: Environment) -> None:
        customers = self._customers(sandbox, "seed-sandbox")
        product = services.product_create(
            environment=sandbox, name="Sandbox plan", idempotency_key="seed-sandbox:product"
        )
        price = services.price_create(
            product=product,
            currency="usd",
            unit_amount=100,
            recurring_interval="month",
            idempotency_key="seed-sandbox:price",
        )
        services.subscription_create(
            customer=customers["us"],
            items=[{"price": price, "quantity": 1}],
            default_payment_method=VISA,
            idempotency_key="seed-sandbox:subscription:us",
        )
