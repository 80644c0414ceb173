"""Test data factories (factory-boy) that create through the services, like everywhere else.

Each factory is a plain `factory.Factory` whose `_create` calls the service that the app itself
uses (`billing.services.customer_create`, `workflows.services.workflow_create`, ...), never
`Model.objects.create`: the object comes with the events, versions and checks the service adds.
Factory-boy supplies the defaults (a Sequence for e-mails and names, a SubFactory for a related
object), so a test names only what it is about:

    CustomerFactory(environment=live, email="ana@example.com")
    SubscriptionFactory(customer__environment=live)   # a customer and a price of its own
    WorkflowFactory(environment=live, definition=..., created_by=alice)   # published, active

The functions below the factories (`customer(live, ...)`, `price(live, ...)`, ...) are the older
call style, kept because hundreds of tests read that way; they are thin calls of the factories.
"""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.models import Group, User

from billing import services as billing
from billing.models import Charge, Customer, Environment, Price, Product, Subscription
from workflows.engine.store.forcing import force_rows


class EnvironmentFactory(factory.Factory):
    """`live` (the default) or any other slug; an existing environment is reused."""

    class Meta:
        model = Environment

    slug = "live"
    name = factory.LazyAttribute(lambda o: o.slug.title())
    kind = factory.LazyAttribute(
        lambda o: Environment.Kind.LIVE if o.slug == "live" else Environment.Kind.SANDBOX
    )

    @classmethod
    def _create(cls, model_class, slug: str, **defaults: Any) -> Environment:
        # Environments have no service: the migration makes `live`, tests may ask for it again.
        return model_class.objects.get_or_create(slug=slug, defaults=defaults)[0]


class UserFactory(factory.Factory):
    """A staff user in the group named `role` (None: no role), made by Django's create_user."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = "password"
    role = None

    @classmethod
    def _create(cls, model_class, role: str | None = None, **fields: Any) -> User:
        # create_user, not objects.create: it hashes the password the login form checks.
        user = model_class.objects.create_user(is_staff=True, **fields)
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user


class BillingFactory(factory.Factory):
    """A billing object made by the billing service each subclass names as `_service`."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, **fields: Any):
        return cls._service(**fields)


class CustomerFactory(BillingFactory):
    _service = staticmethod(billing.customer_create)

    class Meta:
        model = Customer

    environment = factory.SubFactory(EnvironmentFactory)
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class ProductFactory(BillingFactory):
    _service = staticmethod(billing.product_create)

    class Meta:
        model = Product

    environment = factory.SubFactory(EnvironmentFactory)
    name = "Pro plan"


class PriceFactory(BillingFactory):
    """A price of a new product; `recurring_interval=""` makes it one-time."""

    _service = staticmethod(billing.price_create)

    class Meta:
        model = Price

    class Params:
        # Where the product is made; a price has no environment argument of its own.
        environment = factory.SubFactory(EnvironmentFactory)

    product = factory.SubFactory(ProductFactory, environment=factory.SelfAttribute("..environment"))
    currency = "usd"
    unit_amount = 2000
    recurring_interval = "month"


class PaidChargeFactory(factory.Factory):
    """A succeeded charge: a payment intent confirmed with pm_card_visa."""

    class Meta:
        model = Charge

    environment = factory.SubFactory(EnvironmentFactory)
    amount = 5000
    currency = "usd"
    customer = None
    payment_method = "pm_card_visa"

    @classmethod
    def _create(cls, model_class, **fields: Any) -> Charge:
        return billing.payment_intent_create(confirm=True, **fields).latest_charge


class SubscriptionFactory(BillingFactory):
    """A subscription to one monthly price, the customer paying with pm_card_visa."""

    _service = staticmethod(billing.subscription_create)

    class Meta:
        model = Subscription

    class Params:
        environment = factory.SubFactory(EnvironmentFactory)
        price = factory.SubFactory(PriceFactory, environment=factory.SelfAttribute("..environment"))

    customer = factory.SubFactory(
        CustomerFactory,
        environment=factory.SelfAttribute("..environment"),
        default_payment_method="pm_card_visa",
    )
    items = factory.LazyAttribute(lambda o: [{"price": o.price.pk}])


class WorkflowFactory(factory.Factory):
    """A workflow made from its JSON form by workflow_create, then (by default) published and
    activated through the services; `publish=False` leaves the draft, `activate=False` stops
    after publishing."""

    class Meta:
        model = "workflows.Workflow"  # a label: the models import only when a test runs

    environment = factory.SubFactory(EnvironmentFactory)
    definition = factory.LazyFunction(lambda: region_workflow_definition())
    created_by = None
    publish = True
    activate = True

    @classmethod
    def _create(cls, model_class, publish: bool, activate: bool, **fields: Any):
        from workflows import services

        workflow = services.workflow_create(**fields)
        if not publish:
            return workflow
        services.workflow_publish(workflow=workflow, published_by=fields["created_by"])
        if activate:
            workflow = services.workflow_activate(
                workflow=workflow, activated_by=fields["created_by"]
            )
        return workflow


# --- the functional call style, on the factories -------------------------------------------------


def environment(slug: str) -> Environment:
    return EnvironmentFactory(slug=slug)


def user(username: str, role: str | None, password: str = "password") -> User:
    """A staff user in the group named `role` (None: no role)."""
    return UserFactory(username=username, role=role, password=password)


def customer(environment: Environment, **fields: Any) -> Customer:
    return CustomerFactory(environment=environment, **fields)


def price(
    environment: Environment,
    *,
    unit_amount: int = 2000,
    currency: str = "usd",
    interval: str = "month",
    account=None,
    name: str = "Pro plan",
) -> Price:
    """A price of a new product; `interval=""` makes it one-time."""
    return PriceFactory(
        environment=environment,
        product__account=account,
        product__name=name,
        unit_amount=unit_amount,
        currency=currency,
        recurring_interval=interval,
    )


def paid_charge(
    environment: Environment, *, amount: int = 5000, currency: str = "usd", customer=None
) -> Charge:
    """A succeeded charge (through a confirmed payment intent paid with pm_card_visa)."""
    return PaidChargeFactory(
        environment=environment, amount=amount, currency=currency, customer=customer
    )


def workflow_active(environment: Environment, definition: dict, user=None):
    """A workflow made from its JSON form, published and activated through the services."""
    return WorkflowFactory(environment=environment, definition=definition, created_by=user)


def event_mark() -> set[str]:
    """The ids of the events so far; pass to `new_events` to see what a call added."""
    from billing.models import Event

    return set(Event.objects.values_list("id", flat=True))


def new_events(mark: set[str], type: str | None = None) -> list:
    from billing.models import Event

    events = [e for e in Event.objects.order_by("created", "id") if e.id not in mark]
    return [e for e in events if type is None or e.type == type]


def new_event_types(mark: set[str]) -> list[str]:
    """Sorted: events of one transaction may share a timestamp, so their order is not asserted."""
    return sorted(e.type for e in new_events(mark))


# --- run inspector -------------------------------------------------------------------------------


def flaky_action(state: dict, key: str = "tests.flaky"):
    """Register an action that fails (not retryable) while `state["fail"]` is true.

    It counts its successful executions per idempotency key in `state["done"]`, so a test can
    assert an effect happened exactly once. The caller unregisters it (registry.unregister).
    """
    from workflows.actions import registry
    from workflows.actions.registry import Action, ActionError

    def execute(ctx, params):
        if state.get("fail"):
            raise ActionError(state.get("message", "The ledger is unavailable."), type="ledger")
        state.setdefault("done", {})
        state["done"][ctx.idempotency_key] = state["done"].get(ctx.idempotency_key, 0) + 1
        return {"synced": True}

    return registry.register(
        Action(key=key, label="Sync to ledger", execute=execute, side_effects=True), replace=True
    )


def flaky_definition(name: str = "Ledger sync", key: str = "tests.flaky") -> dict:
    """A manual workflow: tag the customer (a billing change), then the flaky step."""
    return {
        "name": name,
        "trigger": {
            "type": "manual",
            "input": [{"name": "customer", "type": "string", "required": True}],
        },
        "steps": [
            {
                "id": "tag",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"synced": "pending"},
                },
            },
            {"id": "sync", "type": "action", "action": key, "params": {}},
        ],
    }


def run_executed(workflow, *, customer, user=None):
    """Start a manual run and execute it in this process, the way a worker does."""
    from workflows.engine.executor import run_execute
    from workflows.engine.runs import run_start_manual

    run = run_start_manual(workflow=workflow, input={"customer": customer.pk}, user=user)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def region_workflow_definition(name: str = "Tag customer region") -> dict:
    """The seed's three-path region workflow: US/CA -> North America, FR/DE/IT -> Europe,
    else Global, each setting the customer's metadata Location."""

    def tag(step_id: str, location: str) -> dict:
        return {
            "id": step_id,
            "type": "action",
            "action": "customers.update",
            "params": {
                "customer": "{{ trigger.data.object.id }}",
                "metadata": {"Location": location},
            },
        }

    def country_in(*codes: str) -> dict:
        return {
            "any": [
                {"field": "trigger.data.object.address.country", "op": "in", "value": list(codes)}
            ]
        }

    return {
        "name": name,
        "trigger": {"type": "event", "event": "customer.created", "accounts": "platform"},
        "steps": [
            {
                "id": "region",
                "type": "branch",
                "paths": [
                    {
                        "name": "North America",
                        "when": country_in("US", "CA"),
                        "steps": [tag("tag_na", "North America")],
                    },
                    {
                        "name": "Europe",
                        "when": country_in("FR", "DE", "IT"),
                        "steps": [tag("tag_eu", "Europe")],
                    },
                    {"name": "Everyone else", "when": None, "steps": [tag("tag_global", "Global")]},
                ],
            }
        ],
    }


# --- health and retention -----------------------------------------------------------------------


def run_row(
    workflow,
    *,
    status: str = "succeeded",
    created=None,
    finished_at=None,
    lease_expires_at=None,
    next_attempt_at=None,
    steps: int = 2,
):
    """A run row with `steps` step runs, written directly so its timestamps can lie in the past.

    Only for tests of what reads run history (health, retention); runs that execute are made
    through the engine.
    """
    from django.utils import timezone

    from workflows.models import Run, StepRun

    created = created or timezone.now()
    terminal = status in ("succeeded", "failed", "canceled")
    run = force_rows(Run).create(
        environment_id=workflow.environment_id,
        workflow=workflow,
        version=workflow.published_version,
        status=status,
        trigger_kind=Run.TriggerKind.MANUAL,
        trigger={"input": {}},
        created=created,
        started_at=created if status != "pending" else None,
        finished_at=finished_at or (created if terminal else None),
        lease_owner="host:1:dead" if status == "running" else "",
        lease_expires_at=lease_expires_at,
        next_attempt_at=next_attempt_at,
    )
    force_rows(StepRun).bulk_create(
        StepRun(
            run=run,
            step_id=f"step{i}",
            status="succeeded" if status == "succeeded" else "pending",
            attempts=1,
            idempotency_key=f"{run.pk}/step{i}/",
            started_at=created,
        )
        for i in range(steps)
    )
    return run


def tag_by_hand_definition() -> dict:
    """A manual workflow whose one step tags the customer (metadata Source=api): the smallest
    workflow with a run, steps and all, for the API's workflow and run endpoints."""
    return {
        "name": "Tag a customer by hand",
        "trigger": {
            "type": "manual",
            "input": [{"name": "customer", "type": "string", "required": True}],
        },
        "steps": [
            {
                "id": "tag",
                "type": "action",
                "action": "customers.update",
                "params": {
                    "customer": "{{ trigger.input.customer }}",
                    "metadata": {"Source": "api"},
                },
            }
        ],
    }
