"""Sent once: an outgoing e-mail or HTTP call claims its idempotency key before it is sent.

The engine executes a step again after a crash or a restart with the same key
(`run/step/iteration`). A key already marked sent returns the first output and sends nothing.
These writes are short autocommit statements of their own: the action runs outside the step's
transaction (`Action.transactional = False`), so a sent mark survives whatever the step does next.

A claim still `sending` is another attempt's send, in flight or cut short by a crash. The
engine runs a step's action under its run's lease and holds that lease until the action
returns (`workflows.engine.leases.lease_held`), so a claim is taken over only by the worker
that holds the run's lease now, checked in the takeover's own statement: the claim's earlier
owner has lost the lease, so it is gone, and a send still in flight is never doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from workflows.actions.registry import ActionError
from workflows.engine.leases import HeldLease, current_lease
from workflows.engine.store import deliveries
from workflows.engine.store.deliveries import delivery_mark_failed, delivery_mark_sent
from workflows.models import Delivery, Run

__all__ = ["delivery_claim", "delivery_mark_failed", "delivery_mark_sent", "delivery_send_once"]


def delivery_claim(*, kind: str, idempotency_key: str, in_progress_seconds: float) -> Delivery:
    """Claim `idempotency_key` for one send of `kind`.

    Returns the Delivery; when its status is `sent` the caller must not send and returns
    `delivery.output`. A claim younger than `in_progress_seconds` that is still `sending` means
    another attempt may be sending right now: that is a retryable error, not a second send.
    """
    now = timezone.now()
    claimed = deliveries.delivery_insert_claim(kind=kind, idempotency_key=idempotency_key, at=now)
    if claimed is not None:
        return claimed
    delivery = Delivery.objects.get(kind=kind, idempotency_key=idempotency_key)
    if delivery.status == Delivery.Status.SENT:
        return delivery
    if delivery.status == Delivery.Status.SENDING and delivery.claimed_at > now - timedelta(
        seconds=in_progress_seconds
    ):
        raise ActionError(
            "Another attempt of this step is sending right now; trying again later.",
            type="delivery_in_progress",
            retryable=True,
        )
    # A failed send, or one whose worker died mid-send: take it over, guarded against a rival.
    # With a lease, in the same statement: only while the run's lease is still ours. A step's
    # worker holds its run's lease for as long as its send is in flight (`lease_held`), so a
    # worker that holds it now knows the one that claimed the send before it is gone (killed,
    # or its lease lost); a worker whose lease was taken over sends nothing.
    lease = current_lease.get()
    taken = deliveries.delivery_take_over(
        delivery=delivery,
        at=now,
        lease_run_id=lease.run_id if lease is not None else None,
        lease_owner=lease.owner if lease is not None else "",
    )
    if not taken and lease is not None and not _lease_alive(lease, now):
        raise ActionError(
            "This run's lease is no longer held by this worker, so it does not send; the "
            "worker that holds it now does.",
            type="lease_lost",
            retryable=True,
        )
    if not taken:
        raise ActionError(
            "Another attempt of this step claimed the send first; trying again later.",
            type="delivery_in_progress",
            retryable=True,
        )
    delivery.refresh_from_db()
    return delivery


def _lease_alive(lease: HeldLease, now) -> bool:
    return Run.objects.filter(
        pk=lease.run_id,
        lease_owner=lease.owner,
        status=Run.Status.RUNNING,
        lease_expires_at__gt=now,
    ).exists()


def delivery_send_once(
    *, kind: str, idempotency_key: str, send: Callable[[], dict], in_progress_seconds: float
) -> dict:
    """Call `send()` at most once successfully per key; a repeat returns the first output.

    `send` returns the action's output (with `message_id` when it has one) or raises
    ActionError; a failed send may be tried again with the same key.
    """
    # A worker that died mid-send is replaced once its run lease expires; by then its claim is
    # older than half a lease, so the new owner sends instead of waiting on a dead claim.
    lease = float(settings.BILLFLOW.get("LEASE_SECONDS", 60))
    delivery = delivery_claim(
        kind=kind,
        idempotency_key=idempotency_key,
        in_progress_seconds=min(in_progress_seconds, lease / 2),
    )
    if delivery.status == Delivery.Status.SENT:
        return delivery.output or {}
    try:
        output = send()
    except ActionError as exc:
        delivery_mark_failed(delivery=delivery, error=exc.message)
        raise
    except Exception as exc:
        delivery_mark_failed(delivery=delivery, error=f"{type(exc).__name__}: {exc}")
        raise
    delivery_mark_sent(delivery=delivery, output=output, message_id=output.get("message_id", ""))
    return output
