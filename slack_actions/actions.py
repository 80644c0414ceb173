"""`slack.post_message`: post a message to a Slack incoming webhook.

The webhook URL is configuration, not a step parameter (`settings.SLACK_ACTIONS["WEBHOOK_URL"]`,
set from `SLACK_WEBHOOK_URL`), so a workflow author cannot send data anywhere else. The call goes
through the same machinery as `http.post` (`http_post_send`: timeout, signature and
Idempotency-Key headers, retryable 429/5xx) and is sent once per idempotency key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from workflows.actions.delivery import delivery_send_once
from workflows.actions.http_post import http_post_send
from workflows.actions.registry import Action, ActionContext, ActionError, InputField, register
from workflows.models import Delivery

TEXT_LIMIT = 3000  # Slack truncates a section's text at 3,000 characters


def webhook_url() -> str:
    return (getattr(settings, "SLACK_ACTIONS", {}) or {}).get("WEBHOOK_URL", "") or ""


def slack_message_send(*, text: str, idempotency_key: str) -> dict:
    """Post `text` to the configured webhook once per key; returns {"status", "body"}."""
    url = webhook_url()
    if not url:
        raise ActionError(
            "No Slack webhook is configured (set SLACK_WEBHOOK_URL).", type="configuration"
        )
    host = (urlsplit(url).hostname or "").lower()
    timeout = float(settings.BILLFLOW.get("HTTP_TIMEOUT_SECONDS", 10.0))
    return delivery_send_once(
        kind=Delivery.Kind.SLACK,
        idempotency_key=idempotency_key,
        in_progress_seconds=timeout * 2,
        # The configured webhook host is trusted by name, like an exact allow-list entry.
        send=lambda: http_post_send(
            url=url,
            payload={"text": text[:TEXT_LIMIT]},
            idempotency_key=idempotency_key,
            allowed_hosts=[host],
            timeout=timeout,
        ),
    )


def execute(ctx: ActionContext, params: dict) -> dict:
    text = str(params.get("text") or "").strip()
    if not text:
        raise ActionError("text is required.", type="invalid_request_error", param="text")
    if ctx.dry_run:
        return {"status": 0, "body": None, "dry_run": True}
    return slack_message_send(text=text, idempotency_key=ctx.idempotency_key)


ACTION = register(
    Action(
        key="slack.post_message",
        label="Post to Slack",
        description="Post a message to the team's Slack channel (an incoming webhook).",
        group="Notifications",
        inputs=(
            InputField(
                "text",
                "text",
                required=True,
                help="Slack mrkdwn; dynamic fields allowed. At most 3,000 characters.",
            ),
        ),
        output={"status": 200, "body": "ok"},
        side_effects=True,
        transactional=False,
        execute=execute,
    )
)
