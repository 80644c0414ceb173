"""The event outbox: `record_event` in the change's transaction, subscribers after commit.

The dispatcher (`BILLING_EVENT_DISPATCHER`, the workflow engine's) is called inside the
transaction that records the event: the runs it creates and their queue messages (the ORM
broker joins the transaction) commit with the event or not at all, and the event is stored
already marked dispatched. That saves a second transaction per event, which on the engine's
hot path (every billing step records one) is most of a step's round trips.

Nothing leaves this module before commit: other subscribers get the event id through
`transaction.on_commit`; one that fails is only logged. Events recorded while no dispatcher is
set keep `dispatched_at` empty, and the sweep dispatches them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from backoffice.inserts import insert_row
from billing.models import Account, Environment, Event, StripeObject, new_id
from billing.snapshots import snapshot, unix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cause:
    """The workflow run whose step is executing, and the chain that led to it."""

    run_id: int | None
    chain: list = field(default_factory=list)


@dataclass(frozen=True)
class RequestInfo:
    """Stripe's `request` part of an event: who asked for the change."""

    id: str = ""
    idempotency_key: str = ""


_cause: ContextVar[Cause | None] = ContextVar("billing_event_cause", default=None)
_request: ContextVar[RequestInfo | None] = ContextVar("billing_event_request", default=None)


@contextlib.contextmanager
def event_cause(*, run_id: int | None, chain: list | None = None) -> Iterator[None]:
    """Events recorded inside carry `caused_by_run_id` and `cause_chain` (recursion checks)."""
    token = _cause.set(Cause(run_id=run_id, chain=list(chain or [])))
    try:
        yield
    finally:
        _cause.reset(token)


@contextlib.contextmanager
def event_request(*, request_id: str = "", idempotency_key: str = "") -> Iterator[None]:
    """Events recorded inside carry this `request.id` / `request.idempotency_key`.

    The service wrapper (`billing.idempotency.billing_service`) sets it from the call's arguments,
    so individual services need not pass them to every `record_event`.
    """
    # What is not given is inherited: a service called inside an API request (or by another
    # service) keeps the outer request's id and key.
    outer = _request.get() or RequestInfo()
    token = _request.set(
        RequestInfo(
            id=request_id or outer.id,
            idempotency_key=idempotency_key or outer.idempotency_key,
        )
    )
    try:
        yield
    finally:
        _request.reset(token)


def record_event(
    *,
    environment: Environment,
    account: Account | None,
    type: str,
    obj: StripeObject,
    previous_attributes: dict | None = None,
    request_id: str = "",
    idempotency_key: str = "",
) -> Event:
    """Append an event for `obj` (snapshotted now) in the current transaction."""
    data: dict = {"object": snapshot(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    request = _request.get() or RequestInfo()
    cause = _cause.get()
    dispatch = _dispatcher()
    event = Event(
        id=new_id("evt"),
        environment=environment,
        account=account,
        type=type,
        data=data,
        object_id=obj.id,
        request_id=request_id or request.id,
        idempotency_key=idempotency_key or request.idempotency_key,
        caused_by_run_id=cause.run_id if cause else None,
        cause_chain=cause.chain if cause else [],
        dispatched_at=timezone.now() if dispatch else None,
    )
    insert_row(event)  # every billing write appends one: built once (backoffice/inserts.py)
    if dispatch:
        # Its writes are part of this transaction; if it raises, the change is undone too.
        dispatch(event)
    # Other outboxes (webhook endpoints' deliveries), likewise in this transaction.
    for record in _outboxes():
        record(event)
    if settings.BILLING_EVENT_SUBSCRIBERS:
        transaction.on_commit(lambda: _notify_subscribers(event.id))
    return event


def _outboxes() -> list:
    return [import_string(path) for path in settings.BILLING_EVENT_OUTBOXES]


def _dispatcher():
    path = settings.BILLING_EVENT_DISPATCHER
    return _load(path) if path else None


@functools.lru_cache(maxsize=8)
def _load(path: str):
    return import_string(path)


def _notify_subscribers(event_id: str) -> None:
    for path in settings.BILLING_EVENT_SUBSCRIBERS:
        try:
            _load(path)(event_id)
        except Exception:
            # The event is committed; the sweep re-dispatches it, so a failure here is only logged.
            logger.exception("event subscriber %s failed for %s", path, event_id)


def event_envelope(event: Event) -> dict:
    """Stripe's event JSON."""
    data = {"object": event.data["object"]}
    if "previous_attributes" in event.data:
        data["previous_attributes"] = event.data["previous_attributes"]
    return {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "created": unix(event.created),
        "livemode": event.environment.livemode,
        "account": event.account_id,
        "data": data,
        "request": {
            "id": event.request_id or None,
            "idempotency_key": event.idempotency_key or None,
        },
    }
