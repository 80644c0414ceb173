"""Telling the workers "send delivery N", as `workflows.engine.queue` does for runs.

With the ORM broker the message joins the caller's transaction (it commits with the delivery
rows or not at all); with Redis it waits for the commit. A lost message costs nothing: the
sweep (webhooks/sweep.py) finds every delivery that is due from the database.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.tasks import async_task

DELIVER_TASK = "webhooks.tasks.webhook_deliver"

_broker = None


def _get_broker():
    global _broker
    if _broker is None:
        _broker = get_broker()
    return _broker


def delivery_enqueue(delivery_id: int) -> None:
    """Queue one send of a delivery; call it in the transaction that made the delivery due."""
    if settings.Q_CLUSTER.get("orm") == "default":
        _send(delivery_id)
    else:
        transaction.on_commit(lambda: _send(delivery_id))


def _send(delivery_id: int) -> None:
    async_task(
        DELIVER_TASK,
        delivery_id,
        q_options={
            "broker": _get_broker(),
            "task_name": f"webhook-{delivery_id}-{uuid.uuid4().hex[:8]}",
            # The delivery row and its attempts are the result.
            "save": False,
        },
    )
