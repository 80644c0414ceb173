"""The one writer of webhook endpoints: create, delete, resend. Each call is one transaction.

Bad input raises `billing.errors.InvalidRequestError` naming the field (`url`,
`enabled_events[1]`, `description`), which the API answers as a 400 and the back office shows
beside the field.
"""

from __future__ import annotations

import secrets
import string
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from billing.errors import InvalidRequestError
from billing.models import Environment, new_id
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.queue import delivery_enqueue
from workflows.actions.http_post import validate_params as http_post_url_problems
from workflows.definition.event_types import EVENT_TYPES

MAX_ENDPOINTS = 16  # per environment, as Stripe allows per account
MAX_URL = 2048
MAX_DESCRIPTION = 5000
MAX_ENABLED_EVENTS = 100
SECRET_ALPHABET = string.ascii_letters + string.digits


class WebhookStateError(Exception):
    """An action the delivery's state does not allow (resending one being sent right now)."""


def known_event_types() -> list[str]:
    return sorted(EVENT_TYPES)


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequestError("Missing required param: url.", param="url")
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidRequestError(f"url must be at most {MAX_URL} characters.", param="url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url) or "{{" in url:
        raise InvalidRequestError(
            f"{url!r} is not a valid URL: it contains spaces or control characters.", param="url"
        )
    try:
        urlsplit(url).port  # noqa: B018 (raises on a port out of range)
    except ValueError as exc:
        raise InvalidRequestError(f"{url!r} is not a valid URL: {exc}.", param="url") from None
    # The same rules as the http.post action: http(s), and a host in HTTP_ALLOWED_HOSTS. Its
    # address is checked when each delivery is sent (a DNS answer may change).
    for _field, problem in http_post_url_problems({"url": url}):
        raise InvalidRequestError(problem, param="url")
    return url


def _check_events(enabled_events: object) -> list[str]:
    if not isinstance(enabled_events, list) or not enabled_events:
        raise InvalidRequestError(
            'enabled_events must be a non-empty list of event types, or ["*"] for all.',
            param="enabled_events",
        )
    if len(enabled_events) > MAX_ENABLED_EVENTS:
        raise InvalidRequestError(
            f"enabled_events may list at most {MAX_ENABLED_EVENTS} types.", param="enabled_events"
        )
    seen: list[str] = []
    for index, value in enumerate(enabled_events):
        if value != "*" and value not in EVENT_TYPES:
            raise InvalidRequestError(
                f"Unknown event type {value!r} in enabled_events: use one of "
                f"{', '.join(known_event_types())}, or '*' for all.",
                param=f"enabled_events[{index}]",
            )
        if value not in seen:
            seen.append(value)
    return ["*"] if "*" in seen else seen


def new_secret() -> str:
    return "whsec_" + "".join(secrets.choice(SECRET_ALPHABET) for _ in range(32))


def webhook_endpoint_create(
    *,
    environment: Environment,
    url: object,
    enabled_events: object,
    description: object = "",
) -> WebhookEndpoint:
    """A new enabled endpoint with a fresh `whsec_…` secret (on the returned object)."""
    url = _check_url(url)
    events = _check_events(enabled_events)
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidRequestError(
            f"description must be text of at most {MAX_DESCRIPTION} characters.",
            param="description",
        )
    with transaction.atomic():
        # Counted under the environment's row lock, so two creates cannot both pass the cap.
        Environment.objects.select_for_update().filter(pk=environment.pk).first()
        if WebhookEndpoint.objects.filter(environment=environment).count() >= MAX_ENDPOINTS:
            raise InvalidRequestError(
                f"This environment already has {MAX_ENDPOINTS} webhook endpoints, the most it "
                "may have; delete one first.",
                param="url",
            )
        return WebhookEndpoint.objects.create(
            id=new_id("we"),
            environment=environment,
            url=url,
            description=description.strip(),
            enabled_events=events,
            secret=new_secret(),
            created=timezone.now(),
        )


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its deliveries and their log: nothing more is sent to it."""
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery's event to its endpoint again, now, whatever its status.

    The next attempt is recorded as a resend. A delivery that fails again is retried while
    its event is inside the retry window, like any other.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = (
            WebhookDelivery.objects.filter(pk=delivery.pk)
            .exclude(status=WebhookDelivery.Status.SENDING, lease_expires_at__gte=now)
            .update(
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at=now,
                resend_requested=True,
                lease_owner="",
                lease_expires_at=None,
            )
        )
        if changed != 1:
            raise WebhookStateError(
                "This delivery is being sent right now; see its result in a moment."
            )
        delivery_enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery
