"""django-q2 tasks: thin, they take an id and call the delivery code."""

from __future__ import annotations

from webhooks.delivery import webhook_deliver as _deliver
from webhooks.sweep import webhook_sweep


def webhook_deliver(delivery_id: int) -> str:
    """ "Send delivery N": one attempt, if it is due and nobody else holds it."""
    return _deliver(delivery_id=delivery_id)


def sweep() -> dict:
    """Queue the deliveries that are due (retries, dead workers' claims, lost messages)."""
    return webhook_sweep()
