"""The delivery outbox: an event's deliveries are written in the transaction that records it.

`billing.events.record_event` calls `webhook_deliveries_record(event)` right after the event's
INSERT (it is listed in `settings.BILLING_EVENT_OUTBOXES`, so billing never imports webhooks).
Every enabled endpoint of the event's environment that lists its type gets one
`WebhookDelivery` row, and its send is queued (`delivery_enqueue`). So a committed event always
has its deliveries, and a rolled-back change has none: nothing is lost between the two, and
the unique (endpoint, event) constraint keeps it to one delivery each.

Every billing write records an event, workflow steps included, and endpoints change seldom.
So each process keeps the enabled endpoints of an environment, valid while the environment's
*signature* is unchanged: a random token in the shared cache (`caches["shared"]`, the
database's, which every host reads), replaced whenever an endpoint is saved or deleted (the
receivers below), in the change's transaction and again once it has committed. An event reads
the token (one small query, without the ORM's query building) and loads the endpoints only
when it differs from the one they were loaded under. The token is read before the endpoints
are loaded, so a change committed after the read replaces the token and the next event
reloads. Endpoints must therefore be changed with `save()` / `delete()` (which send the
signals), never with `QuerySet.update()`.
"""

from __future__ import annotations

import uuid

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing.models import Event
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.queue import delivery_enqueue

SIGNATURE_CACHE = "shared"

# environment id -> (signature, [(endpoint id, its enabled event types)] of enabled endpoints)
_endpoints: dict[int, tuple[str, list[tuple[str, list[str]]]]] = {}


def _signature_key(environment_id: int) -> str:
    return f"webhooks:endpoints:{environment_id}"


def _new_signature(environment_id: int) -> None:
    caches[SIGNATURE_CACHE].set(_signature_key(environment_id), uuid.uuid4().hex, timeout=None)


@receiver(post_save, sender=WebhookEndpoint, dispatch_uid="webhooks_endpoints_changed_save")
@receiver(post_delete, sender=WebhookEndpoint, dispatch_uid="webhooks_endpoints_changed_delete")
def endpoints_changed(sender, instance: WebhookEndpoint, **kwargs) -> None:
    """Every process reloads the environment's endpoints at its next event. Written now (the
    database cache commits it with the change) and again after commit (for a cache outside
    the database, where a process could otherwise keep what it loaded before the commit)."""
    environment_id = instance.environment_id
    _new_signature(environment_id)
    transaction.on_commit(lambda: _new_signature(environment_id))


def _signature(environment_id: int) -> str:
    shared, key = caches[SIGNATURE_CACHE], _signature_key(environment_id)
    signature = shared.get(key)
    if signature is None:
        # Never changed since the cache was emptied: start one (another process's wins).
        shared.add(key, uuid.uuid4().hex, timeout=None)
        signature = shared.get(key)
    return signature


def enabled_endpoints(environment_id: int) -> list[tuple[str, list[str]]]:
    """(id, enabled event types) of the environment's enabled endpoints, as of now."""
    signature = _signature(environment_id)
    cached = _endpoints.get(environment_id)
    if cached is not None and signature is not None and cached[0] == signature:
        return cached[1]
    rows = list(
        WebhookEndpoint.objects.filter(
            environment_id=environment_id, status=WebhookEndpoint.Status.ENABLED
        ).values_list("id", "enabled_events")
    )
    if signature is not None:
        _endpoints[environment_id] = (signature, rows)
    return rows


def _receives(enabled_events: list[str], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


def webhook_deliveries_record(event: Event) -> list[int]:
    """Create (and queue) the deliveries of `event`, in its transaction; returns their ids."""
    matched = [
        pk for pk, types in enabled_endpoints(event.environment_id) if _receives(types, event.type)
    ]
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
