"""The webhook sweep (`webhooks.tasks.sweep`, every minute): queue every delivery that is due.

Retries are not queued when an attempt fails (the queue has no delayed messages); the database
says when each is due, and this sweep queues it then. It also queues deliveries whose worker
died mid-send (`sending` with an expired lease) and first attempts whose message was lost
(still pending after `FIRST_ATTEMPT_GRACE`). A duplicate message is harmless: only one worker
can claim a delivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks.models import WebhookDelivery
from webhooks.queue import delivery_enqueue

FIRST_ATTEMPT_GRACE = timedelta(seconds=10)
BATCH = 500


def webhook_sweep(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    pending = WebhookDelivery.Status.PENDING
    due = (
        Q(status=pending, attempts=0, next_attempt_at__lte=now - FIRST_ATTEMPT_GRACE)
        | Q(status=pending, attempts__gt=0, next_attempt_at__lte=now)
        | Q(status=WebhookDelivery.Status.SENDING, lease_expires_at__lt=now)
    )
    ids = list(
        WebhookDelivery.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:BATCH]
    )
    with transaction.atomic():
        for delivery_id in ids:
            delivery_enqueue(delivery_id)
    return {"deliveries": len(ids)}
