"""Run leases: who may execute a run right now.

Every transition is a conditional UPDATE with a count check (written by the store,
`store/runs.py`), so two workers racing for a run (or a worker racing a cancel) cannot both
win. A step's own writes check the lease in the same statement (`store/steps.py`): its start
renews the lease when due, and its success mark locks the run row on PostgreSQL until the step
commits, so a worker whose lease was taken over cannot commit a step after the new owner
claimed the run.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from workflows.engine.store import runs as run_rows
from workflows.engine.store.runs import Claim


def worker_id() -> str:
    """A lease owner name that is unique per task execution."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_seconds() -> int:
    return int(settings.BILLFLOW["LEASE_SECONDS"])


def lease_claim(*, run_id: int, owner: str) -> Claim | None:
    """Take a pending run that is due, or a running run whose lease expired, and load it (one
    statement on PostgreSQL). A run claimed for the first time gets the claim's time as its
    `started_at`, which tells the executor that the run has no step records yet."""
    expires = timezone.now() + timedelta(seconds=lease_seconds())
    return run_rows.run_claim(run_id=run_id, owner=owner, expires=expires)


def lease_fence(
    *, run_id: int, owner: str, path: list | None = None, expires: datetime | None = None
) -> bool:
    """Renew the lease if it is still ours and the run still runs (not canceled)."""
    expires = expires or timezone.now() + timedelta(seconds=lease_seconds())
    return run_rows.lease_renew(run_id=run_id, owner=owner, expires=expires, path=path)


# Giving the run back until a retry is due, and ending it, are the store's transitions as they
# are: they change nothing unless the lease is still ours.
lease_defer = run_rows.run_defer
lease_wait = run_rows.run_wait
lease_finish = run_rows.run_finish


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
