"""The steps of the system workflows (workflows/system/catalogue.py), as registry actions.

Each takes the system workflow's key and the trigger event's object, honours the environment's
settings (a step turned off raises `StepSkipped`, which the executor records as skipped with the
reason) and is idempotent with the step's key `run/step/iteration`:

* statistics and provider notifications are rows unique on that key, written in the step's
  transaction, so a step executed again counts nothing twice;
* e-mails go through the `Delivery` send-once record, like `team.email` (the team notification
  *is* a `team.email` send), so a restart after a crash or an SMTP outage sends each once.

They are for system workflows only; the builder does not offer the "System" group to automations.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from workflows.actions import team_email
from workflows.actions.registry import Action, ActionContext, ActionError, InputField, StepSkipped
from workflows.actions.registry import register as _register
from workflows.models import ProviderNotification, SystemStatistic
from workflows.system import catalogue as system

GROUP = "System"
INPUTS = (
    InputField("system_key", "string", required=True, help="Which system workflow this is."),
    InputField("event_id", "string", help="The trigger event's id."),
    InputField("object", "object", required=True, help="The trigger event's data.object."),
)


def _prepare(ctx: ActionContext, params: dict, step: str) -> tuple[system.SystemWorkflow, object]:
    """The system workflow and its settings; raises StepSkipped when the step is turned off."""
    spec = system.system_workflow(str(params.get("system_key") or ""))
    if spec is None:
        raise ActionError(
            f"Unknown system workflow {params.get('system_key')!r}.",
            type="invalid_request_error",
            param="system_key",
        )
    row = system.system_settings_get(environment=ctx.environment, system_key=spec.key)
    if step in (row.disabled_steps or []):
        raise StepSkipped(
            f"'{system.STEP_LABELS[step]}' is turned off in this environment's settings "
            f"for {spec.name}."
        )
    return spec, row


def _object(params: dict) -> dict:
    obj = params.get("object")
    if not isinstance(obj, dict):
        raise ActionError(
            "The trigger event has no data.object.", type="invalid_request_error", param="object"
        )
    return obj


def update_statistics(ctx: ActionContext, params: dict) -> dict:
    spec, _ = _prepare(ctx, params, "update_statistics")
    obj = _object(params)
    amount, currency = system.object_amount(obj)
    output = {
        "metric": spec.metric,
        "object_id": str(obj.get("id") or ""),
        "amount": amount,
        "currency": currency,
    }
    if ctx.dry_run:
        return {**output, "counted": False}
    _, created = SystemStatistic.objects.get_or_create(
        idempotency_key=ctx.idempotency_key,
        defaults={
            "environment": ctx.environment,
            "metric": spec.metric,
            "object_id": output["object_id"],
            "amount": amount,
            "currency": currency,
        },
    )
    return {**output, "counted": created}


def notify_provider(ctx: ActionContext, params: dict) -> dict:
    spec, _ = _prepare(ctx, params, "notify_provider")
    obj = _object(params)
    output = {"topic": spec.event, "object_id": str(obj.get("id") or "")}
    if ctx.dry_run:
        return {**output, "notified": False}
    ProviderNotification.objects.get_or_create(
        idempotency_key=ctx.idempotency_key,
        defaults={
            "environment": ctx.environment,
            "topic": spec.event,
            "object_id": output["object_id"],
            "payload": {"event": params.get("event_id") or "", "object": obj},
        },
    )
    return {**output, "notified": True}


def email_customer(ctx: ActionContext, params: dict) -> dict:
    spec, row = _prepare(ctx, params, "email_customer")
    obj = _object(params)
    customer = system.object_customer(environment=ctx.environment, obj=obj)
    if customer is None or not customer.email:
        raise StepSkipped(f"The {spec.noun}'s customer has no e-mail address; nothing was sent.")
    context = system.email_context(spec=spec, obj=obj, customer=customer)
    try:
        subject, body = system.email_render(spec=spec, row=row, context=context)
    except Exception as exc:  # an edited template that fails on this object
        raise ActionError(f"The e-mail template failed: {exc}", type="template_error") from exc
    if ctx.dry_run:
        return {"message_id": "", "recipients": [customer.email], "subject": subject}
    preview = {"subject": subject, "text": body}
    return team_email.email_send_once(ctx=ctx, preview=preview, addresses=[customer.email])


def notify_team(ctx: ActionContext, params: dict) -> dict:
    spec, row = _prepare(ctx, params, "notify_team")
    obj = _object(params)
    if not row.team_recipients:
        raise StepSkipped(
            f"No team recipients are set for {spec.name}; add them in the system workflow settings."
        )
    customer = system.object_customer(environment=ctx.environment, obj=obj)
    amount, currency = system.object_amount(obj)
    rows = [
        {"label": "Event", "value": f"{spec.event} {params.get('event_id') or ''}".strip()},
        {"label": spec.noun.capitalize(), "value": obj.get("id") or "-"},
        {"label": "Status", "value": obj.get("status") or "-"},
        {"label": "Customer", "value": (customer.email or customer.pk) if customer else "-"},
        {"label": "Amount", "value": system.money(amount, currency) or "-"},
    ]
    if ctx.run_id is not None:
        link = f"{settings.SITE_URL}{reverse('runs:detail', args=[ctx.run_id])}"
        rows.append({"label": "Run", "value": link})
    return team_email.execute(
        ctx,
        {
            "recipients": list(row.team_recipients),
            "subject": f"{spec.name}: {obj.get('id') or spec.noun}",
            "body": f"{spec.description} ({ctx.environment.name})",
            "rows": rows,
        },
    )


def schedule_payment_retry(ctx: ActionContext, params: dict) -> dict:
    _prepare(ctx, params, "schedule_payment_retry")
    obj = _object(params)
    if obj.get("object") != "invoice":
        raise ActionError("A payment retry needs an invoice.", type="invalid_request_error")
    if obj.get("status") != "open":
        return {"scheduled": False, "invoice": obj.get("id"), "reason": "The invoice is not open."}
    if ctx.dry_run:
        return {"scheduled": False, "invoice": obj.get("id"), "reason": "Test run."}
    return system.payment_retry_schedule(
        environment=ctx.environment, invoice=obj, idempotency_key=ctx.idempotency_key
    )


def _action(key: str, execute, description: str, output: dict, transactional: bool) -> Action:
    return _register(
        Action(
            key=f"system.{key}",
            label=system.STEP_LABELS[key],
            execute=execute,
            description=description,
            inputs=INPUTS,
            output=output,
            side_effects=True,
            transactional=transactional,
            group=GROUP,
        )
    )


_action(
    "update_statistics",
    update_statistics,
    "Count the event in the environment's statistics, once per step execution.",
    {"metric": "subscriptions.created", "object_id": "sub_123", "amount": 2000, "currency": "usd"},
    True,
)
_action(
    "notify_provider",
    notify_provider,
    "Tell the payment provider about the change, once per step execution.",
    {"topic": "customer.subscription.created", "object_id": "sub_123", "notified": True},
    True,
)
_action(
    "email_customer",
    email_customer,
    "E-mail the customer, from the environment's template for this system workflow.",
    {"message_id": "<billflow.…>", "recipients": ["jenny@example.com"], "subject": "…"},
    False,
)
_action(
    "notify_team",
    notify_team,
    "E-mail the team members set in the system workflow's settings.",
    {"message_id": "<billflow.…>", "recipients": ["finance@example.com"], "subject": "…"},
    False,
)
_action(
    "schedule_payment_retry",
    schedule_payment_retry,
    "Schedule the next attempt to pay the invoice (a due-date row the retry task picks up).",
    {"scheduled": True, "invoice": "in_123", "attempt": 2, "due_at": "2026-01-02T00:00:00+00:00"},
    True,
)
