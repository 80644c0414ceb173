"""Reads of webhook endpoints and their delivery log, always scoped to an environment."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from billing.errors import NotFoundError
from billing.models import Environment
from billing.snapshots import unix
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

ENDPOINT_ID = re.compile(r"we_[A-Za-z0-9]{1,36}")
LOG_LIMIT = 100


def endpoints_in(environment: Environment) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(environment=environment)


def get_endpoint(environment: Environment, endpoint_id: str) -> WebhookEndpoint:
    """The endpoint in this environment; another environment's endpoint is missing."""
    endpoint = None
    # Anything not shaped like our ids (a NUL byte, say) names nothing: no query for it.
    if ENDPOINT_ID.fullmatch(endpoint_id):
        endpoint = endpoints_in(environment).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFoundError(f"No such webhook endpoint: '{endpoint_id}'", param="id")
    endpoint.environment = environment
    return endpoint


def delivery_log(endpoint: WebhookEndpoint, limit: int = LOG_LIMIT) -> list[WebhookDelivery]:
    """The endpoint's latest deliveries, newest first, each with its attempts (newest first)."""
    deliveries = list(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-created", "-pk")[:limit]
    )
    attempts: dict[int, list[WebhookAttempt]] = {}
    for attempt in WebhookAttempt.objects.filter(delivery__in=deliveries).order_by(
        "-started_at", "-pk"
    ):
        attempts.setdefault(attempt.delivery_id, []).append(attempt)
    for delivery in deliveries:
        delivery.log = attempts.get(delivery.pk, [])
    return deliveries


def endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict:
    """Stripe's `webhook_endpoint` object; the secret only when it was just created."""
    body = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "created": unix(endpoint.created),
        "description": endpoint.description or None,
        "enabled_events": list(endpoint.enabled_events),
        "livemode": endpoint.livemode,
        "status": endpoint.status,
        "url": endpoint.url,
    }
    if with_secret:
        body["secret"] = endpoint.secret
    return body
