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
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Exists
from django.utils import timezone

from backoffice.inserts import insert_unless_taken
from backoffice.updates import update_where
from workflows.actions.registry import ActionError
from workflows.engine.leases import HeldLease, current_lease
from workflows.models import Delivery, Run


def delivery_claim(*, kind: str, idempotency_key: str, in_progress_seconds: float) -> Delivery:
    """Claim `idempotency_key` for one send of `kind`.

    Returns the Delivery; when its status is `sent` the caller must not send and returns
    `delivery.output`. A claim younger than `in_progress_seconds` that is still `sending` means
    another attempt may be sending right now: that is a retryable error, not a second send.
    """
    now = timezone.now()
    delivery = Delivery(kind=kind, idempotency_key=idempotency_key, claimed_at=now)
    if insert_unless_taken(delivery, unique=("kind", "idempotency_key")):
        return delivery
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
    claim = Delivery.objects.filter(
        pk=delivery.pk, status=delivery.status, claimed_at=delivery.claimed_at
    )
    lease = current_lease.get()
    if lease is not None:
        # In the same statement: only while the run's lease is still ours. A step's worker holds
        # its run's lease for as long as its send is in flight (`lease_held`), so a worker that
        # holds it now knows the one that claimed the send before it is gone (killed, or its
        # lease lost); a worker whose lease was taken over sends nothing.
        claim = claim.filter(
            Exists(
                Run.objects.filter(
                    pk=lease.run_id,
                    lease_owner=lease.owner,
                    status=Run.Status.RUNNING,
                    lease_expires_at__gt=now,
                )
            )
        )
    taken = claim.update(
        status=Delivery.Status.SENDING, claimed_at=now, attempts=delivery.attempts + 1
    )
    if taken != 1 and lease is not None and not _lease_alive(lease, now):
        raise ActionError(
            "This run's lease is no longer held by this worker, so it does not send; the "
            "worker that holds it now does.",
            type="lease_lost",
            retryable=True,
        )
    if taken != 1:
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


def delivery_mark_sent(*, delivery: Delivery, output: dict, message_id: str = "") -> None:
    def mark() -> None:
        # Once per e-mail or HTTP step: built once (backoffice/updates.py). Durable: without
        # it a repeat of the step would send again.
        update_where(
            Delivery,
            where={"id": delivery.pk},
            status=Delivery.Status.SENT,
            output=output,
            message_id=message_id,
            error="",
            sent_at=timezone.now(),
        )

    try:
        mark()
    except (OperationalError, InterfaceError):
        # The message is out: without this mark the next attempt sends it again. A connection
        # that died during the send (a terminated backend, a database fail-over) is replaced
        # once; inside a caller's transaction it cannot be, and the error stands.
        if connection.in_atomic_block:
            raise
        connection.close()
        mark()


def delivery_mark_failed(*, delivery: Delivery, error: str) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED, error=error[:1000]
    )


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
