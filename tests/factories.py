"""Test data builders. Billing objects are made through the services, like everywhere else."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from billing.models import Environment


def environment(slug: str) -> Environment:
    kind = Environment.Kind.LIVE if slug == "live" else Environment.Kind.SANDBOX
    env, _ = Environment.objects.get_or_create(
        slug=slug, defaults={"name": slug.title(), "kind": kind}
    )
    return env


def user(username: str, role: str | None, password: str = "password") -> User:
    """A staff user in the group named `role` (None: no role)."""
    u = User.objects.create_user(
        username=username, email=f"{username}@example.com", password=password, is_staff=True
    )
    if role:
        group, _ = Group.objects.get_or_create(name=role)
        u.groups.add(group)
    return u


# --- billing objects (made through billing.services) --------------------------------------------


def customer(environment, **fields):
    from billing import services

    fields.setdefault("email", "jenny@example.com")
    return services.customer_create(environment=environment, **fields)


def price(
    environment,
    *,
    unit_amount: int = 2000,
    currency: str = "usd",
    interval: str = "month",
    account=None,
    name: str = "Pro plan",
):
    """A price of a new product; `interval=""` makes it one-time."""
    from billing import services

    product = services.product_create(environment=environment, account=account, name=name)
    return services.price_create(
        product=product, currency=currency, unit_amount=unit_amount, recurring_interval=interval
    )


def paid_charge(environment, *, amount: int = 5000, currency: str = "usd", customer=None):
    """A succeeded charge (through a confirmed payment intent paid with pm_card_visa)."""
    from billing import services

    intent = services.payment_intent_create(
        environment=environment,
        amount=amount,
        currency=currency,
        customer=customer,
        payment_method="pm_card_visa",
        confirm=True,
    )
    return intent.latest_charge


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


def workflow_active(environment, definition: dict, user=None):
    """A workflow made from its JSON form, published and activated through the services."""
    from workflows import services

    workflow = services.workflow_create(
        environment=environment, definition=definition, created_by=user
    )
    services.workflow_publish(workflow=workflow, published_by=user)
    return services.workflow_activate(workflow=workflow, activated_by=user)


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
    from workflows.runs import run_start_manual

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
    run = Run.objects.create(
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
    StepRun.objects.bulk_create(
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
