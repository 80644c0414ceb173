"""Run leases: who may execute a run right now.

Every transition is a conditional UPDATE with a count check, so two workers racing for a run
(or a worker racing a cancel) cannot both win. The executor calls `lease_fence` (or, when the
lease needs no renewal yet, `lease_hold`) at the start of each step's transaction: it checks
the lease is still ours and, on PostgreSQL, locks the run row until the step commits, so a
worker whose lease was taken over cannot commit a step after the new owner claimed the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backoffice.updates import update_where
from workflows.models import Run


def worker_id() -> str:
    """A lease owner name that is unique per task execution."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_seconds() -> int:
    return int(settings.BILLFLOW["LEASE_SECONDS"])


# Once per run, so plain SQL (the ORM spent about 1 ms building it): take a pending run that
# is due, or a running run whose lease expired.
_CLAIM_SQL = """
    UPDATE workflows_run
    SET status = %s, lease_owner = %s, lease_expires_at = %s, next_attempt_at = NULL,
        started_at = COALESCE(started_at, %s)
    WHERE id = %s AND (
        (status = %s AND (next_attempt_at IS NULL OR next_attempt_at <= %s))
        OR (status = %s AND lease_expires_at < %s)
    )
"""


def lease_claim(*, run_id: int, owner: str) -> datetime | None:
    """Take a pending run that is due, or a running run whose lease expired.

    Returns the claim's time (None: not claimed). A run claimed for the first time gets it as
    its `started_at`, which tells the executor that the run has no step records yet."""
    at = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds())
    Status = Run.Status
    params = [Status.RUNNING, owner, at(expires), at(now), run_id]
    params += [Status.PENDING, at(now), Status.RUNNING, at(now)]
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        return now if cursor.rowcount == 1 else None


def lease_fence(*, run_id: int, owner: str, path: list | None = None) -> bool:
    """Renew the lease if it is still ours and the run still runs (not canceled)."""
    changes: dict = {"lease_expires_at": timezone.now() + timedelta(seconds=lease_seconds())}
    if path is not None:
        changes["path"] = path
    # Once per step: plain SQL (see backoffice/updates.py).
    where = {"id": run_id, "lease_owner": owner, "status": Run.Status.RUNNING}
    return update_where(Run, where=where, **changes) == 1


# Once per step when the lease needs no renewal: a row lock writes no new row version, so
# PostgreSQL updates none of the run's indexes (an UPDATE of `lease_expires_at` updates all).
_HOLD_SQL = "SELECT 1 FROM workflows_run WHERE id = %s AND lease_owner = %s AND status = %s"


def lease_hold(*, run_id: int, owner: str) -> bool:
    """`lease_fence` without renewing: the lease is still ours and the run still runs, and on
    PostgreSQL the run row stays locked until the transaction ends (SQLite's write lock
    covers the whole database already)."""
    sql = _HOLD_SQL + (" FOR UPDATE" if connection.features.has_select_for_update else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id, owner, Run.Status.RUNNING])
        return cursor.fetchone() is not None


def lease_defer(*, run_id: int, owner: str, due: datetime, path: list) -> bool:
    """Give the run back until `due` (a retry far enough away not to hold a worker)."""
    return (
        Run.objects.filter(pk=run_id, lease_owner=owner, status=Run.Status.RUNNING).update(
            status=Run.Status.PENDING,
            lease_owner="",
            lease_expires_at=None,
            next_attempt_at=due,
            path=path,
        )
        == 1
    )


def lease_finish(
    *,
    run_id: int,
    owner: str,
    status: str,
    path: list,
    error: dict | None = None,
    stop_reason: str = "",
) -> bool:
    """End the run (succeeded or failed) if we still hold it."""
    return (
        update_where(
            Run,
            where={"id": run_id, "lease_owner": owner, "status": Run.Status.RUNNING},
            status=status,
            path=path,
            error=error,
            stop_reason=stop_reason,
            lease_owner="",
            lease_expires_at=None,
            finished_at=timezone.now(),
        )
        == 1
    )
