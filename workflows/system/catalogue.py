"""System workflows: the billing system's own processes, run as durable workflows.

Seven predefined step sequences, one per core billing event (DESIGN.md "System workflows").
Their definitions live here, in the same JSON form as automations; `system_workflows_install`
puts them into an environment as `Workflow(kind="system", system_key=…)` with a published,
active version, so they run on the same engine, show in the same inspector and restart from the
failed step. Their steps are fixed (the workflow services refuse to edit or delete them); what
happens inside each step is configured per environment in `SystemWorkflowSettings`: the
customer e-mail's wording, the team's recipients, and each step on or off.

docs/system-workflows.md describes them for operators.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.template import Context, Engine, TemplateSyntaxError
from django.template.loader import get_template
from django.utils import timezone
from django_q.models import Schedule

from billing.errors import BillingError
from billing.models import Charge, Customer, Environment, Invoice
from workflows.definition import event_types
from workflows.definition import money as money_format
from workflows.definition.rows import definition_to_json, definition_to_rows, version_definition
from workflows.definition.validation import DefinitionInvalid, validate_definition
from workflows.models import PaymentRetry, SystemWorkflowSettings, Workflow, WorkflowVersion

STEP_LABELS: dict[str, str] = {
    "update_statistics": "Update statistics",
    "notify_provider": "Notify the payment provider",
    "email_customer": "Email the customer",
    "notify_team": "Notify the team",
    "schedule_payment_retry": "Schedule the payment retry",
}

PAYMENT_RETRY_SCHEDULE = "billflow:payment-retries"
PAYMENT_RETRY_FUNC = "workflows.tasks.payment_retries"  # stored in the schedule row
# Hours after the nth failed attempt at which the invoice is charged again (Stripe-like).
DEFAULT_RETRY_DELAYS_HOURS = (24, 72, 120)
# Currencies without a minor unit: one table for the builder, `| money` and these e-mails.
ZERO_DECIMAL_CURRENCIES = money_format.ZERO_DECIMAL_CURRENCIES


@dataclass(frozen=True)
class SystemWorkflow:
    key: str
    name: str
    event: str
    steps: tuple[str, ...]
    metric: str
    description: str
    # What the object of the event is called in team notifications ("subscription", "invoice").
    noun: str


SYSTEM_WORKFLOWS: tuple[SystemWorkflow, ...] = (
    SystemWorkflow(
        key="subscription_created",
        name="Subscription Creation",
        event="customer.subscription.created",
        steps=("update_statistics", "notify_provider", "email_customer", "notify_team"),
        metric="subscriptions.created",
        description="A customer subscribed: count it, tell the provider, confirm to the customer.",
        noun="subscription",
    ),
    SystemWorkflow(
        key="subscription_canceled",
        name="Subscription Cancellation",
        event="customer.subscription.deleted",
        steps=("update_statistics", "notify_provider", "email_customer", "notify_team"),
        metric="subscriptions.canceled",
        description="A subscription ended: count it, tell the provider, confirm to the customer.",
        noun="subscription",
    ),
    SystemWorkflow(
        key="payment_succeeded",
        name="Payment Success",
        event="invoice.paid",
        steps=("update_statistics", "email_customer", "notify_team"),
        metric="payments.succeeded",
        description="An invoice was paid: count it and send the customer a receipt.",
        noun="invoice",
    ),
    SystemWorkflow(
        key="payment_failed",
        name="Payment Failure",
        event="invoice.payment_failed",
        steps=("email_customer", "notify_team", "schedule_payment_retry"),
        metric="payments.failed",
        description="An invoice payment failed: tell the customer and the team, retry later.",
        noun="invoice",
    ),
    SystemWorkflow(
        key="invoice_created",
        name="Invoice Creation",
        event="invoice.created",
        steps=("update_statistics", "email_customer", "notify_team"),
        metric="invoices.created",
        description="An invoice was created: count it and let the customer know.",
        noun="invoice",
    ),
    SystemWorkflow(
        key="refund_created",
        name="Refund Creation",
        event="refund.created",
        steps=("update_statistics", "email_customer", "notify_team"),
        metric="refunds.created",
        description="A refund was made: count it and confirm it to the customer.",
        noun="refund",
    ),
    SystemWorkflow(
        key="chargeback_created",
        name="Chargeback Creation",
        event="charge.dispute.created",
        steps=("update_statistics", "notify_team"),
        metric="chargebacks.created",
        description="A customer disputed a charge: count it and alert the team.",
        noun="dispute",
    ),
)
BY_KEY: dict[str, SystemWorkflow] = {spec.key: spec for spec in SYSTEM_WORKFLOWS}


class SystemWorkflowError(Exception):
    """Settings that cannot be saved; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def system_workflow(key: str) -> SystemWorkflow | None:
    return BY_KEY.get(key)


def system_definition(spec: SystemWorkflow) -> dict:
    """The JSON form of a system workflow (the same form automations use)."""
    params = {
        "system_key": spec.key,
        "event_id": "{{ trigger.id }}",
        "object": "{{ trigger.data.object }}",
    }
    return definition_to_json(
        {
            "name": spec.name,
            "description": spec.description,
            "trigger": {"type": "event", "event": spec.event, "accounts": "all"},
            "steps": [
                {
                    "id": step,
                    "type": "action",
                    "name": STEP_LABELS[step],
                    "action": f"system.{step}",
                    "params": dict(params),
                }
                for step in spec.steps
            ],
        }
    )


# --- install ----------------------------------------------------------------------------------


def system_workflows_install(*, environment: Environment) -> list[Workflow]:
    """Install (or bring up to date) the seven system workflows of `environment`. Idempotent.

    A missing workflow is created active with its definition published; one whose published
    definition differs from the code's gets a new published version (runs already started keep
    theirs). Their status is left as it is otherwise.
    """
    installed = [_install_one(environment, spec) for spec in SYSTEM_WORKFLOWS]
    _ensure_retry_schedule()
    return installed


@transaction.atomic
def _install_one(environment: Environment, spec: SystemWorkflow) -> Workflow:
    # The environment row lock serialises two installs of the same environment.
    Environment.objects.select_for_update().filter(pk=environment.pk).first()
    definition = system_definition(spec)
    workflow = (
        Workflow.objects.select_for_update()
        .filter(environment=environment, kind=Workflow.Kind.SYSTEM, system_key=spec.key)
        .first()
    )
    if workflow is not None and workflow.published_version is not None:
        if version_definition(workflow.published_version) == definition:
            return workflow
    errors = validate_definition(definition, environment=environment)
    if errors:  # a programming error: the code's definition must always be valid
        raise DefinitionInvalid(errors)
    now = timezone.now()
    if workflow is None:
        workflow = Workflow.objects.create(
            environment=environment,
            name=spec.name,
            description=spec.description,
            kind=Workflow.Kind.SYSTEM,
            system_key=spec.key,
            status=Workflow.Status.ACTIVE,
            created=now,
            updated=now,
        )
    version = definition_to_rows(version=WorkflowVersion(workflow=workflow), definition=definition)
    last = WorkflowVersion.objects.filter(workflow=workflow).aggregate(n=Max("number"))["n"]
    version.number = (last or 0) + 1
    version.published_at = now
    version.save(update_fields=["number", "published_at"])
    workflow.published_version = version
    workflow.draft_version = None
    workflow.name, workflow.description, workflow.updated = spec.name, spec.description, now
    workflow.save(
        update_fields=["published_version", "draft_version", "name", "description", "updated"]
    )
    return workflow


def _ensure_retry_schedule() -> None:
    Schedule.objects.get_or_create(
        name=PAYMENT_RETRY_SCHEDULE,
        defaults={
            "func": PAYMENT_RETRY_FUNC,
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
            "repeats": -1,
        },
    )


def system_workflows_for(*, environment: Environment) -> dict[str, Workflow]:
    """The installed system workflows of `environment`, by key."""
    rows = Workflow.objects.filter(
        environment=environment, kind=Workflow.Kind.SYSTEM, deleted_at__isnull=True
    ).select_related("published_version")
    return {w.system_key: w for w in rows if w.system_key in BY_KEY}


# --- settings ---------------------------------------------------------------------------------


def system_settings_get(*, environment: Environment, system_key: str) -> SystemWorkflowSettings:
    """The environment's settings for one system workflow (defaults, unsaved, when none)."""
    found = SystemWorkflowSettings.objects.filter(
        environment=environment, system_key=system_key
    ).first()
    return found or SystemWorkflowSettings(environment=environment, system_key=system_key)


@transaction.atomic
def system_settings_update(
    *,
    environment: Environment,
    system_key: str,
    enabled_steps: list[str],
    email_subject: str,
    email_body: str,
    team_recipients: list[str],
    updated_by: Any = None,
) -> SystemWorkflowSettings:
    """Save what happens inside a system workflow's steps; its steps themselves never change."""
    from workflows.actions.registry import ActionError
    from workflows.actions.team_email import recipients_resolve

    spec = BY_KEY.get(system_key)
    if spec is None:
        raise SystemWorkflowError({"system_key": f"Unknown system workflow {system_key!r}."})
    errors: dict[str, str] = {}
    unknown = [s for s in enabled_steps if s not in spec.steps]
    if unknown:
        errors["steps"] = f"{spec.name} has no step {unknown[0]!r}."
    subject = " ".join((email_subject or "").split())
    body = (email_body or "").replace("\r\n", "\n").strip()
    if "email_customer" not in spec.steps:
        subject = body = ""  # no customer e-mail in this workflow: nothing to word
    # The default template's text is stored as "", so later changes to the default apply.
    if subject and subject == default_email_source(spec, "subject").strip():
        subject = ""
    if body and body == default_email_source(spec, "body").strip():
        body = ""
    if len(subject) > 200:
        errors["email_subject"] = "The subject is longer than 200 characters."
    for field, source in (("email_subject", subject), ("email_body", body)):
        problem = _template_problem(spec, source)
        if problem:
            errors[field] = problem
    recipients = [r.strip() for r in team_recipients if r and r.strip()]
    if recipients:
        try:
            recipients_resolve(recipients)
        except ActionError as exc:
            errors["team_recipients"] = exc.message
    if errors:
        raise SystemWorkflowError(errors)
    row, _ = SystemWorkflowSettings.objects.select_for_update().get_or_create(
        environment=environment, system_key=system_key
    )
    row.disabled_steps = [s for s in spec.steps if s not in enabled_steps]
    row.email_subject = subject
    row.email_body = body
    row.team_recipients = recipients
    row.updated_by = updated_by
    row.updated = timezone.now()
    row.save()
    return row


# --- the customer e-mail ----------------------------------------------------------------------


def _engine() -> Engine:
    """A template engine that sees only the values it is given: no loaders, no tag libraries
    beyond Django's built-ins, no auto-escaping (the e-mail is plain text)."""
    return Engine(dirs=[], app_dirs=False, libraries={}, autoescape=False, debug=False)


# `{% debug %}` would print the context and the loaded modules into a customer's e-mail.
FORBIDDEN_TAG = re.compile(r"{%-?\s*debug\b")


def _template_problem(spec: SystemWorkflow, source: str) -> str:
    """Why this subject or body cannot be saved ("" when it can): it must compile, and render
    on the event type's sample object."""
    if not source:
        return ""
    if FORBIDDEN_TAG.search(source):
        return "The {% debug %} tag is not allowed in e-mails."
    try:
        template = _engine().from_string(source)
    except TemplateSyntaxError as exc:
        return f"The template does not compile: {exc}"
    try:
        template.render(Context(_sample_context(spec)))
    except Exception as exc:
        return f"The template fails on a sample {spec.noun}: {exc}"
    return ""


def _sample_context(spec: SystemWorkflow) -> dict:
    obj = event_types.sample_event(spec.event)["data"]["object"]
    sample = Customer(id="cus_123", name="Jenny Rosen", email="jenny@example.com")
    return email_context(spec=spec, obj=obj, customer=sample)


def default_email_source(spec: SystemWorkflow, part: str) -> str:
    """The shipped template text of the customer e-mail's `part` ("subject" or "body")."""
    return get_template(f"emails/system/{spec.key}.{part}.txt").template.source


def money(amount: object, currency: object) -> str:
    """20.00 USD; 500 JPY."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return ""
    return money_format.format_money(amount, str(currency or "").lower())


def object_amount(obj: dict) -> tuple[int, str]:
    for field in ("amount_paid", "total", "amount_due", "amount"):
        value = obj.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value:
            return value, str(obj.get("currency") or "")
    if obj.get("object") == "subscription":
        items = ((obj.get("items") or {}).get("data")) or []
        total = sum(
            int((item.get("price") or {}).get("unit_amount") or 0) * int(item.get("quantity") or 1)
            for item in items
        )
        return total, str(obj.get("currency") or "")
    return 0, str(obj.get("currency") or "")


def object_customer(*, environment: Environment, obj: dict) -> Customer | None:
    """The customer an event's object belongs to (refunds and disputes: through the charge)."""
    customer_id = obj.get("customer")
    if not customer_id and obj.get("charge"):
        customer_id = (
            Charge.objects.filter(environment=environment, pk=obj["charge"])
            .values_list("customer_id", flat=True)
            .first()
        )
    if not customer_id or not isinstance(customer_id, str):
        return None
    return Customer.objects.filter(environment=environment, pk=customer_id).first()


def email_context(*, spec: SystemWorkflow, obj: dict, customer: Customer | None) -> dict:
    """What an e-mail template may use: `customer`, `object`, `amount`, `workflow`."""
    amount, currency = object_amount(obj)
    return {
        "customer": {
            "id": customer.pk if customer else "",
            "name": (customer.name if customer else "") or "there",
            "email": customer.email if customer else "",
        },
        # A copy: a template calling a method of the object cannot change the run's context.
        "object": copy.deepcopy(obj),
        "amount": money(amount, currency),
        "workflow": spec.name,
        "site_url": settings.SITE_URL,
    }


def email_render(
    *, spec: SystemWorkflow, row: SystemWorkflowSettings, context: dict
) -> tuple[str, str]:
    """The customer e-mail's (subject, body): the environment's wording or the default."""
    engine = _engine()
    subject_source = row.email_subject or default_email_source(spec, "subject")
    body_source = row.email_body or default_email_source(spec, "body")
    subject = engine.from_string(subject_source).render(Context(context))
    body = engine.from_string(body_source).render(Context(context))
    return " ".join(subject.split())[:200], body.strip() + "\n"


def email_preview(*, spec: SystemWorkflow, row: SystemWorkflowSettings) -> tuple[str, str]:
    """The e-mail as a customer would get it, filled with the event type's sample object."""
    try:
        return email_render(spec=spec, row=row, context=_sample_context(spec))
    except Exception as exc:  # a template that renders badly is shown, not raised
        return "", f"(The template could not be rendered: {exc})"


# --- payment retries --------------------------------------------------------------------------


def retry_delays() -> tuple[float, ...]:
    return tuple(settings.BILLFLOW.get("PAYMENT_RETRY_DELAYS_HOURS", DEFAULT_RETRY_DELAYS_HOURS))


def payment_retry_schedule(
    *, environment: Environment, invoice: dict, idempotency_key: str
) -> dict:
    """Write the due-date row for the invoice's next payment attempt (once per key)."""
    attempts = int(invoice.get("attempt_count") or 0)
    delays = retry_delays()
    invoice_id = str(invoice.get("id") or "")
    if attempts > len(delays):
        return {
            "scheduled": False,
            "invoice": invoice_id,
            "reason": f"The invoice was attempted {attempts} times; no more retries.",
        }
    due = timezone.now() + timedelta(hours=float(delays[max(attempts, 1) - 1]))
    retry, _ = PaymentRetry.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={
            "environment": environment,
            "invoice_id": invoice_id,
            "attempt": attempts + 1,
            "due_at": due,
        },
    )
    return {
        "scheduled": True,
        "invoice": retry.invoice_id,
        "attempt": retry.attempt,
        "due_at": retry.due_at.isoformat(),
    }


def payment_retries_run(*, now: Any = None, limit: int = 100) -> int:
    """Pay the invoices whose retry is due; returns how many retries were attempted.

    Each retry is claimed under a row lock and paid with an idempotency key of its own, so two
    workers (or a worker that died after paying) never charge twice.
    """
    from billing.services import invoice_pay

    now = now or timezone.now()
    done = 0
    for retry_id in PaymentRetry.objects.filter(
        status=PaymentRetry.Status.SCHEDULED, due_at__lte=now
    ).values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            retry = (
                PaymentRetry.objects.select_for_update(skip_locked=True)
                .filter(pk=retry_id, status=PaymentRetry.Status.SCHEDULED)
                .first()
            )
            if retry is None:
                continue
            invoice = Invoice.objects.filter(
                environment_id=retry.environment_id, pk=retry.invoice_id
            ).first()
            retry.attempted_at = timezone.now()
            if invoice is None or invoice.status != Invoice.Status.OPEN:
                retry.status = PaymentRetry.Status.SKIPPED
                retry.result = "The invoice is no longer open."
            else:
                try:
                    with transaction.atomic():
                        invoice = invoice_pay(
                            invoice=invoice, idempotency_key=f"payment-retry:{retry.pk}"
                        )
                except BillingError as exc:
                    if exc.retryable:  # the provider may be back soon: try again later
                        retry.due_at = timezone.now() + timedelta(minutes=10)
                        retry.result = exc.message[:500]
                        retry.save(update_fields=["due_at", "result", "attempted_at"])
                        continue
                    retry.status = PaymentRetry.Status.FAILED
                    retry.result = exc.message[:500]
                else:
                    paid = invoice.status == Invoice.Status.PAID
                    retry.status = (
                        PaymentRetry.Status.SUCCEEDED if paid else PaymentRetry.Status.FAILED
                    )
                    retry.result = f"The invoice is {invoice.status}."
            retry.save(update_fields=["status", "result", "attempted_at"])
            done += 1
    return done
