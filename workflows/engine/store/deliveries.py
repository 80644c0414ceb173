"""A send's record (`Delivery`): claimed before an e-mail or HTTP call, marked sent or failed.

Short autocommit statements of their own: the action runs outside the step's transaction, so
a sent mark survives whatever the step does next. What a claim means (who may take over a
`sending` claim) is `workflows/actions/delivery.py`'s; the rows are written here.
"""

from __future__ import annotations

from datetime import datetime

from django.db import InterfaceError, OperationalError
from django.db.models import Exists
from django.utils import timezone

from workflows.engine.store import dialect
from workflows.engine.store.guard import store_writes
from workflows.engine.store.statements import (
    column,
    default_db,
    insert_unless_taken,
    table,
    update_where,
)
from workflows.models import Delivery, Run, StepRun


def delivery_insert_claim(*, kind: str, idempotency_key: str, at: datetime) -> Delivery | None:
    """A new `sending` claim of this key, or None when the key has a record already."""
    delivery = Delivery(kind=kind, idempotency_key=idempotency_key, claimed_at=at)
    if insert_unless_taken(delivery, unique=("kind", "idempotency_key")):
        return delivery
    return None


def delivery_take_over(
    *, delivery: Delivery, at: datetime, lease_run_id: int | None, lease_owner: str = ""
) -> bool:
    """Take over a failed or abandoned claim as it was read (a rival's takeover changes it
    first). With a lease: only while run `lease_run_id`'s lease is still `lease_owner`'s and
    unexpired, checked in the same statement."""
    claim = Delivery.objects.filter(
        pk=delivery.pk, status=delivery.status, claimed_at=delivery.claimed_at
    )
    if lease_run_id is not None:
        claim = claim.filter(
            Exists(
                Run.objects.filter(
                    pk=lease_run_id,
                    lease_owner=lease_owner,
                    status=Run.Status.RUNNING,
                    lease_expires_at__gt=at,
                )
            )
        )
    with store_writes():
        taken = claim.update(
            status=Delivery.Status.SENDING, claimed_at=at, attempts=delivery.attempts + 1
        )
    return taken == 1


def delivery_mark_sent(*, delivery: Delivery, output: dict, message_id: str = "") -> None:
    """Durable: without this mark a repeat of the step would send again. A connection that
    died during the send (a terminated backend, a fail-over) is replaced once; inside a
    caller's transaction it cannot be, and the error stands."""

    def mark() -> None:
        update_where(
            Delivery,
            where={"pk": delivery.pk},
            status=Delivery.Status.SENT,
            output=output,
            message_id=message_id,
            error="",
            sent_at=timezone.now(),
        )

    try:
        mark()
    except (OperationalError, InterfaceError):
        db = default_db()
        if db.in_atomic_block:
            raise
        db.close()
        mark()


def delivery_mark_failed(*, delivery: Delivery, error: str) -> None:
    update_where(
        Delivery,
        where={"pk": delivery.pk},
        status=Delivery.Status.FAILED,
        error=error[: Delivery._meta.get_field("error").max_length],
    )


def deliveries_delete_of_runs(run_ids: list[int]) -> int:
    """Delete the send records of these runs' steps (retention: the runs are over, and a
    record only stops a second send of a step that may run again); returns the count.

    The keys are read first and then matched with every kind named, so the DELETE is served by
    the (kind, idempotency_key) unique index; a sub-select there is planned as a scan of the
    whole table. Call it inside the transaction that deletes the runs."""
    if not run_ids:
        return 0
    db = default_db()
    runs_sql, runs_params = dialect.in_list(db, run_ids)
    key = column(Delivery, "idempotency_key", db=db)
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {column(StepRun, 'idempotency_key', db=db)} FROM {table(StepRun, db)} "
            f"WHERE {column(StepRun, 'run', db=db)} {runs_sql}",
            runs_params,
        )
        keys = [row[0] for row in cursor.fetchall()]
        if not keys:
            return 0
        kinds_sql, kinds_params = dialect.in_list(db, Delivery.Kind.values)
        keys_sql, keys_params = dialect.in_list(db, keys)
        cursor.execute(
            f"DELETE FROM {table(Delivery, db)} "
            f"WHERE {column(Delivery, 'kind', db=db)} {kinds_sql} AND {key} {keys_sql}",
            kinds_params + keys_params,
        )
        return cursor.rowcount
