"""The delivery outbox: an event's deliveries are written in the transaction that records it.

`billing.events.record_event` calls `webhook_deliveries_record(event)` right after the event's
INSERT (it is listed in `settings.BILLING_EVENT_OUTBOXES`, so billing never imports webhooks).
Every enabled endpoint of the event's environment that lists its type gets one
`WebhookDelivery` row, and its send is queued (`delivery_enqueue`). So a committed event always
has its deliveries, and a rolled-back change has none: nothing is lost between the two, and
the unique (endpoint, event) constraint keeps it to one delivery each.

Every billing write records an event, workflow steps included: an environment without
endpoints pays one indexed SELECT per event and nothing else.
"""

from __future__ import annotations

from billing.models import Event
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.queue import delivery_enqueue


def _receives(enabled_events: list[str], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


def webhook_deliveries_record(event: Event) -> list[int]:
    """Create (and queue) the deliveries of `event`, in its transaction; returns their ids."""
    rows = WebhookEndpoint.objects.filter(
        environment_id=event.environment_id, status=WebhookEndpoint.Status.ENABLED
    ).values_list("id", "enabled_events")
    matched = [pk for pk, types in rows if _receives(types, event.type)]
    if not matched:
        return []
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint_id=pk,
                event_id=event.pk,
                next_attempt_at=event.created,
                created=event.created,
            )
            for pk in sorted(matched)
        ]
    )
    ids = [delivery.pk for delivery in deliveries]
    for delivery_id in ids:
        delivery_enqueue(delivery_id)
    return ids
