"""The event outbox: `record_event` in the change's transaction, subscribers after commit.

An event is an ordinary `Event.objects.create(...)`: its `save()` and the model signals run, so
anything listening on `post_save` sees every billing event.

The dispatcher (`BILLING_EVENT_DISPATCHER`, the workflow engine's) is called inside the
transaction that records the event: the runs it creates and their queue messages (the ORM
broker joins the transaction) commit with the event or not at all, and the event is stored
already marked dispatched. That saves a second transaction per event, which on the engine's
hot path (every billing step records one) is most of a step's round trips.

Nothing leaves this module before commit: other subscribers get the event id through
`transaction.on_commit`; one that fails is only logged. Events recorded while no dispatcher is
set keep `dispatched_at` empty, and the sweep dispatches them.

Who asks for a change (Stripe's `request` part of an event, and the workflow run that caused
it) is the one request context, `request_context`, in the style of django-pghistory's
`context`: the API and the back office open it per request, every service opens it from its
own `request_id`, `idempotency_key` and `cause` arguments, and every event recorded inside
carries it. What an inner block does not give, it inherits from the outer one.
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

from billing.models import Account, Environment, Event, StripeObject
from billing.snapshots import snapshot, unix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cause:
    """The workflow run whose step makes a change, and the chain of (workflow id, run id) pairs
    that led to it (the engine's recursion checks read it back from the event)."""

    run_id: int | None
    chain: list = field(default_factory=list)


@dataclass(frozen=True)
class RequestContext:
    """Who asks: Stripe's `request.id` and `request.idempotency_key`, and the causing run."""

    request_id: str = ""
    idempotency_key: str = ""
    cause: Cause | None = None


NO_REQUEST = RequestContext()
_context: ContextVar[RequestContext | None] = ContextVar("billing_request_context", default=None)


@contextlib.contextmanager
def request_context(
    *, request_id: str = "", idempotency_key: str = "", cause: Cause | None = None
) -> Iterator[RequestContext]:
    """Events recorded inside carry these; what is not given is inherited from outside (a
    service called inside an API request, or by another service, keeps the request's id)."""
    outer = _context.get() or NO_REQUEST
    inner = RequestContext(
        request_id=request_id or outer.request_id,
        idempotency_key=idempotency_key or outer.idempotency_key,
        cause=cause or outer.cause,
    )
    token = _context.set(inner)
    try:
        yield inner
    finally:
        _context.reset(token)


def current_request() -> RequestContext:
    return _context.get() or NO_REQUEST


@contextlib.contextmanager
def event_request(*, request_id: str = "", idempotency_key: str = "") -> Iterator[None]:
    """The HTTP layer's entry: events recorded inside carry this `request.id` /
    `request.idempotency_key` (`request_context` without a cause)."""
    with request_context(request_id=request_id, idempotency_key=idempotency_key):
        yield


@contextlib.contextmanager
def event_cause(*, run_id: int | None, chain: list | None = None) -> Iterator[None]:
    """Events recorded inside carry `caused_by_run_id` and `cause_chain`. Prefer passing
    `cause=Cause(...)` to the service; this is `request_context(cause=...)` for callers that
    wrap several calls."""
    with request_context(cause=Cause(run_id=run_id, chain=list(chain or []))):
        yield


def record_event(
    *,
    environment: Environment,
    account: Account | None,
    type: str,
    obj: StripeObject,
    previous_attributes: dict | None = None,
    request_id: str = "",
    idempotency_key: str = "",
    cause: Cause | None = None,
) -> Event:
    """Append an event for `obj` (snapshotted now) in the current transaction. The request
    fields and cause not given here come from the request context."""
    data: dict = {"object": snapshot(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    context = current_request()
    cause = cause or context.cause
    dispatch = _dispatcher()
    event = Event.objects.create(
        environment=environment,
        account=account,
        type=type,
        data=data,
        object_id=obj.id,
        request_id=request_id or context.request_id,
        idempotency_key=idempotency_key or context.idempotency_key,
        caused_by_run_id=cause.run_id if cause else None,
        cause_chain=cause.chain if cause else [],
        dispatched_at=timezone.now() if dispatch else None,
    )
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
