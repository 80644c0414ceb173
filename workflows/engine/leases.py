"""Run leases: who may execute a run right now.

Every transition is a conditional UPDATE with a count check, so two workers racing for a run
(or a worker racing a cancel) cannot both win. The executor calls `lease_fence` at the start of
each step's transaction: it renews the lease and, on PostgreSQL, locks the run row until the
step commits, so a worker whose lease was taken over cannot commit a step after the new owner
claimed the run.
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


def lease_claim(*, run_id: int, owner: str) -> bool:
    """Take a pending run that is due, or a running run whose lease expired."""
    at = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds())
    Status = Run.Status
    params = [Status.RUNNING, owner, at(expires), at(now), run_id]
    params += [Status.PENDING, at(now), Status.RUNNING, at(now)]
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        return cursor.rowcount == 1


def lease_fence(*, run_id: int, owner: str, path: list | None = None) -> bool:
    """Renew the lease if it is still ours and the run still runs (not canceled)."""
    changes: dict = {"lease_expires_at": timezone.now() + timedelta(seconds=lease_seconds())}
    if path is not None:
        changes["path"] = path
    # Once per step: plain SQL (see backoffice/updates.py).
    where = {"id": run_id, "lease_owner": owner, "status": Run.Status.RUNNING}
    return update_where(Run, where=where, **changes) == 1


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
