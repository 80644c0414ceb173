"""Run leases: who may execute a run right now.

Every transition is a conditional UPDATE with a count check, so two workers racing for a run
(or a worker racing a cancel) cannot both win. A step's own writes check the lease in the same
statement (`records.py`): its start renews the lease when due, and its success mark locks the
run row on PostgreSQL until the step commits, so a worker whose lease was taken over cannot
commit a step after the new owner claimed the run.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from backoffice.commits import NO_WAIT_CTE, commit_without_waiting
from backoffice.partial import partial_instance
from backoffice.reconnect import once_more_if_disconnected
from backoffice.selects import columns_of, from_row
from backoffice.updates import update_where
from billing.models import Account, Environment
from workflows.models import Run, WorkflowVersion


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


# PostgreSQL: the claim and the load in one statement; the run with what the executor needs of
# its version (the published definition is cached per process), environment and event. The
# columns are named, not `*`: a prepared statement must not change its result's shape.
@functools.cache
def _claim_and_load_sql(no_wait: bool) -> str:
    claim = _CLAIM_SQL
    head = "WITH "
    if no_wait:  # an autocommit claim need not wait for the disk (backoffice/commits.py)
        claim = claim.replace("WHERE id", "FROM no_wait WHERE id")
        head = f"WITH {NO_WAIT_CTE}, "
    return f"""{head}claimed AS ({claim} RETURNING {columns_of(Run, "workflows_run")})
        SELECT {columns_of(Run, "claimed")},
               v.number, v.published_at, e.slug, e.name, e.kind, e.created, ev.account_id
        FROM claimed
        JOIN workflows_workflowversion v ON v.id = claimed.version_id
        JOIN billing_environment e ON e.id = claimed.environment_id
        LEFT JOIN billing_event ev ON ev.id = claimed.event_id
    """


@dataclass(frozen=True)
class Claim:
    run: Run  # with its version (partly: what the definition cache needs) and environment
    at: datetime  # the claim's time; a run claimed for the first time started then
    account: Account | None  # the connected account of the run's event, if any


def lease_claim(*, run_id: int, owner: str) -> Claim | None:
    """Take a pending run that is due, or a running run whose lease expired, and load it.

    A run claimed for the first time gets the claim's time as its `started_at`, which tells
    the executor that the run has no step records yet."""
    at = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds())
    Status = Run.Status
    params = [Status.RUNNING, owner, at(expires), at(now), run_id]
    params += [Status.PENDING, at(now), Status.RUNNING, at(now)]
    if connection.vendor == "postgresql":
        sql = _claim_and_load_sql(no_wait=commit_without_waiting(connection, durable=False))

        def claim_and_load() -> tuple | None:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()

        # A task's first statement: a connection that died while the worker was idle is
        # replaced (workers skip Django's health check; backoffice/reconnect.py).
        row = once_more_if_disconnected(claim_and_load)
        if row is None:
            return None
        run = from_row(Run, row)
        number, published_at, slug, name, kind, created, account_id = row[-7:]
        run.version = partial_instance(
            WorkflowVersion,
            id=run.version_id,
            workflow_id=run.workflow_id,
            number=number,
            published_at=published_at,
        )
        run.environment = partial_instance(
            Environment, id=run.environment_id, slug=slug, name=name, kind=kind, created=created
        )
        account = Account.objects.get(pk=account_id) if account_id else None
        return Claim(run=run, at=now, account=account)

    def claim() -> int:
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, params)
            return cursor.rowcount

    if once_more_if_disconnected(claim) != 1:
        return None
    run = Run.objects.select_related("version", "environment", "event__account").get(pk=run_id)
    return Claim(run=run, at=now, account=run.event.account if run.event_id else None)


def lease_fence(
    *, run_id: int, owner: str, path: list | None = None, expires: datetime | None = None
) -> bool:
    """Renew the lease if it is still ours and the run still runs (not canceled)."""
    expires = expires or timezone.now() + timedelta(seconds=lease_seconds())
    changes: dict = {"lease_expires_at": expires}
    if path is not None:
        changes["path"] = path
    # Plain SQL (see backoffice/updates.py).
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
    durable: bool = True,
) -> bool:
    """End the run (succeeded or failed) if we still hold it. `durable=False` for an end
    that may be lost to a crash of PostgreSQL (the run would be ended again)."""
    return (
        update_where(
            Run,
            where={"id": run_id, "lease_owner": owner, "status": Run.Status.RUNNING},
            durable=durable,
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


# --- the lease held while an action runs --------------------------------------------------------

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldLease:
    run_id: int
    owner: str


# The lease the current action runs under; `delivery_claim` takes over a send only while it is
# still ours (workflows/actions/delivery.py).
current_lease: contextvars.ContextVar[HeldLease | None] = contextvars.ContextVar(
    "current_lease", default=None
)


@contextlib.contextmanager
def lease_held(*, run_id: int, owner: str, heartbeat: bool) -> Iterator[None]:
    """Run an action under the lease of run `run_id`, and keep holding the lease meanwhile.

    A send's own time limit (`HTTP_TIMEOUT_SECONDS`, `EMAIL_TIMEOUT_SECONDS`, at most half the
    lease) and the lease renewed at the step's start (at least three quarters left) already end
    an e-mail or HTTP call before the lease can expire. The heartbeat covers what such a limit
    cannot interrupt: a DNS lookup, a custom action without a limit of its own, a starved CPU.
    Every `LEASE_SECONDS / 3` it renews the lease (fenced: only while it is still ours and the
    run runs) from a thread with its own database connection, which it opens only if the action
    lasts that long, and closes. So a run is taken over only when its worker is gone, never
    while its action is still in flight; django-q's task timeout still ends a worker stuck for
    good, and then the lease runs out.
    """
    token = current_lease.set(HeldLease(run_id=run_id, owner=owner))
    stop = threading.Event()
    beat = None
    if heartbeat:
        beat = threading.Thread(
            target=_heartbeat,
            args=(run_id, owner, stop, lease_seconds() / 3),
            name=f"lease-heartbeat-{run_id}",
            daemon=True,
        )
        beat.start()
    try:
        yield
    finally:
        stop.set()
        current_lease.reset(token)
        # Not joined: a renewal blocked on a lock must not hold the step; the thread ends on
        # its own, and a renewal after the action ended is harmless (fenced, and the next write
        # of this worker renews or ends the lease anyway).


def _heartbeat(run_id: int, owner: str, stop: threading.Event, every: float) -> None:
    try:
        while not stop.wait(every):
            try:
                if not lease_fence(run_id=run_id, owner=owner):
                    return  # canceled, or no longer ours: nothing more to hold
            except Exception:
                # A renewal that failed (the database away) is tried again at the next beat,
                # which still comes before the lease runs out.
                logger.warning("lease renewal of run %s failed", run_id, exc_info=True)
    finally:
        connections.close_all()  # this thread's connections only (opened only if it renewed)
