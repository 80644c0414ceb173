"""Every URL of the project, made concrete with sample objects, for the security walks.

`url_routes()` lists each URL pattern (admin model URLs, builder, inspector, system workflows,
the API); `sample_world()` makes one object of each kind in the live environment; `concrete(route,
world)` fills a route's parameters from it. tests/security/test_permission_matrix.py and
tests/security/test_security_csrf.py walk the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver

from tests import factories

# The cast of tests/conftest.py: (column, username, role group).
ROLES = (
    ("anonymous", None, None),
    ("olga", "olga", None),
    ("vic", "vic", "Viewer"),
    ("sam", "sam", "Customer Support"),
    ("mona", "mona", "Account Manager"),
    ("dave", "dave", "Developer"),
    ("alice", "alice", "Admin"),
)
API_PREFIX = "api/v1/"


@dataclass(frozen=True)
class Route:
    pattern: str  # the route as Django prints it, e.g. "admin/runs/<int:run_id>/"
    name: str | None

    @property
    def is_api(self) -> bool:
        return self.pattern.lstrip("^").startswith(API_PREFIX)


def _walk(patterns, prefix: str = "", namespace: str | None = None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield Route(prefix + str(entry.pattern), name)


def url_routes() -> list[Route]:
    seen: dict[str, Route] = {}
    for route in _walk(get_resolver().url_patterns):
        seen.setdefault(route.pattern, route)
    return list(seen.values())


def sample_world() -> dict:
    """One object of every kind the URLs take, in the live environment."""
    from django.contrib.auth.models import Group, User

    from billing import services
    from billing.api_keys import api_key_create
    from billing.models import Event
    from workflows.actions import registry
    from workflows.models import RunBatch
    from workflows.system.catalogue import system_workflows_install

    live = factories.environment("live")
    system_workflows_install(environment=live)
    endpoint = _webhook_endpoint(live)  # first, so the events below are delivered to it
    customer = factories.customer(live, email="matrix@example.com")
    price = factories.price(live)
    charge = factories.paid_charge(live, customer=customer)
    subscription = services.subscription_create(
        customer=customer,
        items=[{"price": price, "quantity": 1}],
        default_payment_method="pm_card_visa",
    )
    invoice = services.invoice_create(
        customer=customer, lines=[{"amount": 100, "currency": "usd", "description": "Work"}]
    )
    refund = services.refund_create(charge=charge, amount=100)
    credit = services.customer_balance_transaction_create(
        customer=customer, amount=-100, currency="usd"
    )
    dispute = services.dispute_create(charge=factories.paid_charge(live, customer=customer))
    account = services.account_create(environment=live, name="Connected Ltd")
    session = services.checkout_session_create(
        environment=live, mode="payment", line_items=[{"price": price, "quantity": 1}]
    )
    api_key, _ = api_key_create(environment=live, name="matrix")

    state: dict = {}
    factories.flaky_action(state)
    try:
        workflow = factories.workflow_active(live, factories.flaky_definition())
        run = factories.run_executed(workflow, customer=customer)
    finally:
        registry.unregister("tests.flaky")

    objects = {
        "billing.environment": live,
        "billing.account": account,
        "billing.customer": customer,
        "billing.product": price.product,
        "billing.price": price,
        "billing.subscription": subscription,
        "billing.invoice": invoice,
        "billing.paymentintent": charge.payment_intent,
        "billing.charge": charge,
        "billing.refund": refund,
        "billing.customerbalancetransaction": credit,
        "billing.dispute": dispute,
        "billing.checkoutsession": session,
        "billing.event": Event.objects.filter(environment=live).first(),
        "billing.apikey": api_key,
        "auth.user": User.objects.create_user(username="sample", password="x", is_staff=True),
        "auth.group": Group.objects.get_or_create(name="Viewer")[0],
    }
    objects["webhooks.webhookendpoint"] = endpoint
    objects["webhooks.webhookdelivery"] = endpoint.deliveries.order_by("pk").first()
    objects.update(_django_q_samples())
    objects.update(_axes_samples())
    return {
        "environment": live,
        "objects": objects,
        "workflow": workflow,
        "step_id": "sync",
        "version": 1,
        "run": run,
        # A bulk restart of that run (never applied: the matrix reads its progress panel).
        "batch": RunBatch.objects.create(
            environment=live, action="restart", selection={"runs": [run.pk]}
        ),
        "system_key": "payment_failed",
        "customer": customer,
    }


def _webhook_endpoint(environment):
    from django.conf import settings
    from django.test import override_settings

    from webhooks.services import webhook_endpoint_create

    allowed = {**settings.BILLFLOW, "HTTP_ALLOWED_HOSTS": ["hooks.example.com"]}
    with override_settings(BILLFLOW=allowed):
        return webhook_endpoint_create(
            environment=environment, url="https://hooks.example.com/", enabled_events=["*"]
        )


def _django_q_samples() -> dict:
    from django.utils import timezone
    from django_q.models import Failure, OrmQ, Schedule, Success

    now = timezone.now()
    common = {"name": "matrix", "func": "math.floor", "started": now, "stopped": now}
    return {
        "django_q.schedule": Schedule.objects.create(func="math.floor", name="matrix"),
        "django_q.success": Success.objects.create(id="a" * 32, success=True, **common),
        "django_q.failure": Failure.objects.create(id="b" * 32, success=False, **common),
        "django_q.ormq": OrmQ.objects.create(key="matrix", payload="x", lock=now),
    }


def _axes_samples() -> dict:
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.utils import timezone

    who = {"username": "matrix", "ip_address": "203.0.113.9", "user_agent": "matrix"}
    now = timezone.now()
    return {
        "axes.accessattempt": AccessAttempt.objects.create(
            failures_since_start=1, attempt_time=now, **who
        ),
        "axes.accesslog": AccessLog.objects.create(attempt_time=now, **who),
        "axes.accessfailurelog": AccessFailureLog.objects.create(attempt_time=now, **who),
    }


ADMIN_MODEL = re.compile(r"^admin/(?P<app>\w+)/(?P<model>\w+)/")
API_PARAM = re.compile(r"\{(\w+)\}|<(?:\w+:)?(\w+)>")


def _api_value(name: str, world: dict) -> str:
    objects = world["objects"]
    by_param = {
        "workflow_id": world["workflow"].pk,
        "run_id": world["run"].pk,
        "batch_id": world["batch"].pk,
        "account_id": objects["billing.account"].pk,
        "customer_id": objects["billing.customer"].pk,
        "product_id": objects["billing.product"].pk,
        "price_id": objects["billing.price"].pk,
        "subscription_id": objects["billing.subscription"].pk,
        "invoice_id": objects["billing.invoice"].pk,
        "intent_id": objects["billing.paymentintent"].pk,
        "charge_id": objects["billing.charge"].pk,
        "refund_id": objects["billing.refund"].pk,
        "transaction_id": objects["billing.customerbalancetransaction"].pk,
        "dispute_id": objects["billing.dispute"].pk,
        "session_id": objects["billing.checkoutsession"].pk,
        "event_id": objects["billing.event"].pk,
        "endpoint_id": objects["webhooks.webhookendpoint"].pk,
        "delivery_id": objects["webhooks.webhookdelivery"].pk,
    }
    return str(by_param.get(name, "0"))


def concrete(route: Route, world: dict) -> str:
    """The route with its parameters filled from `world` (an unknown one gets "0")."""
    pattern = route.pattern
    if pattern.startswith("admin/^(?P<app_label>"):
        return "/admin/billing/"
    if pattern == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/"
    if pattern.startswith("^"):  # a catch-all regex, like the API's unknown-route answer
        return "/" + pattern.lstrip("^") + "no-such-route"
    objects = world["objects"]
    model_match = ADMIN_MODEL.match(pattern)
    sample = None
    if model_match:
        sample = objects.get(f"{model_match['app']}.{model_match['model']}")

    def fill(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name == "content_type_id":  # admin/r/…: "view on site" for the sample customer
            return str(ContentType.objects.get_for_model(objects["billing.customer"]).pk)
        if name == "object_id" and pattern.startswith("admin/r/"):
            return str(objects["billing.customer"].pk)
        if name in ("object_id", "id"):
            # Quoted as the admin's own links are: its URLs unquote "_3F" and the like, which
            # random ids ("re_3F…") contain now and then.
            return quote(str(sample.pk)) if sample is not None else "0"
        if name == "workflow_id":
            return str(world["workflow"].pk)
        if name == "step_id":
            return world["step_id"]
        if name == "number":
            return str(world["version"])
        if name == "run_id":
            return str(world["run"].pk)
        if name == "system_key":
            return world["system_key"]
        return _api_value(name, world)

    return "/" + API_PARAM.sub(fill, pattern)


def registered_admin_models() -> list[str]:
    return [f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry]
