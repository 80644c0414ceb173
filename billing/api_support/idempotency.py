"""Idempotent POSTs: the same `Idempotency-Key` answers the first response again, changing
nothing; and the request id the events a request records carry.

Built on the services' keys (`billing.idempotency.claim_key`, `ensure_same_request`): one table,
one way to claim a key. The API's keys are stored with an `api:` prefix and the response they
answered, so they never meet the engine's `run/step/iteration` keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from billing.errors import IdempotencyError, ProviderError
from billing.events import event_request
from billing.idempotency import claim_key, ensure_same_request
from billing.models import IdempotencyRecord, new_id
from billing.provider import use_up_fault_after_rollback

IDEMPOTENCY_HEADER = "Idempotency-Key"
# API keys live beside the services' own keys in one table; the prefix keeps them apart.
IDEMPOTENCY_PREFIX = "api:"
MAX_IDEMPOTENCY_KEY = 255 - len(IDEMPOTENCY_PREFIX)


def request_id(request: HttpRequest) -> str:
    """Stripe's `req_…` id for this request, recorded on the events it causes."""
    if not getattr(request, "billflow_request_id", ""):
        request.billflow_request_id = new_id("req")
    return request.billflow_request_id


# Headers that change what a request does, so they count as its parameters.
FINGERPRINTED_HEADERS = ("Stripe-Account",)


def _fingerprint(request: HttpRequest) -> str:
    try:
        canonical = json.dumps(json.loads(request.body or b"null"), sort_keys=True)
    except ValueError:
        canonical = request.body.decode("latin-1")
    headers = "|".join(request.headers.get(name, "") for name in FINGERPRINTED_HEADERS)
    return hashlib.sha256(f"{headers}\n{canonical}".encode()).hexdigest()


def _replay(record: IdempotencyRecord, scope: str, fingerprint: str, raw_key: str) -> HttpResponse:
    """The first request's answer again, if this is the same request and it has one."""
    ensure_same_request(
        record, scope=scope, fingerprint=fingerprint, param=IDEMPOTENCY_HEADER, shown_key=raw_key
    )
    if record.response_status is None:  # the first request is still being worked on
        raise IdempotencyError(
            f"A request with idempotency key {raw_key!r} is still in progress; retry shortly.",
            code="idempotency_key_in_use",
            param=IDEMPOTENCY_HEADER,
            http_status=409,
        )
    response = JsonResponse(record.response_body, status=record.response_status, safe=False)
    response["Idempotent-Replayed"] = "true"
    response[IDEMPOTENCY_HEADER] = raw_key
    return response


class Answer:
    """A write's answer other than a 200: a declined confirm answers 402 with a `card_error`,
    yet its writes (the failed charge, the failure events) are committed, and a replay with the
    same `Idempotency-Key` answers the same 402."""

    def __init__(self, status: int, body: dict) -> None:
        self.status = status
        self.body = body


def _status_and_body(result: Any) -> tuple[int, Any]:
    return (result.status, result.body) if isinstance(result, Answer) else (200, result)


def idempotent(request: HttpRequest, run: Callable[[str | None], Any]) -> HttpResponse:
    """Run a POST's write once per `Idempotency-Key`.

    `run(idempotency_key)` does the write and returns the JSON body (or an `Answer` with
    another status, committed all the same); it is given None, since the stored response (not
    a service-level key) is what makes the request idempotent. It runs in one transaction
    together with the claimed key and the stored response, so a replay returns exactly the
    first answer and a crash leaves neither. An error rolls everything back, the key included:
    nothing was done, so the client may fix the request and use the key again (Stripe does not
    save requests that fail validation either).
    """
    try:
        return _idempotent(request, run)
    except ProviderError as error:
        # Our transaction rolled back the simulator's fault counter with everything else;
        # count the failed call again, outside it (see billing.provider).
        use_up_fault_after_rollback(error)
        raise


def _idempotent(request: HttpRequest, run: Callable[[str | None], Any]) -> HttpResponse:
    raw_key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    if not raw_key:
        with transaction.atomic():
            status, body = _status_and_body(run(None))
        return JsonResponse(body, status=status, safe=False)
    if len(raw_key) > MAX_IDEMPOTENCY_KEY:
        raise IdempotencyError(
            f"Idempotency keys are at most {MAX_IDEMPOTENCY_KEY} characters.",
            param=IDEMPOTENCY_HEADER,
        )
    scope = f"{request.method} {request.path}"[:120]
    fingerprint = _fingerprint(request)
    with transaction.atomic():
        # Claimed first: a concurrent request with the key waits on the unique index until
        # this transaction ends, then replays what it stored.
        record, ours = claim_key(
            environment=request.environment,
            key=IDEMPOTENCY_PREFIX + raw_key,
            scope=scope,
            fingerprint=fingerprint,
        )
        if ours:
            # The service gets no key (see above); events still carry the client's key as
            # `request.idempotency_key`.
            with event_request(idempotency_key=raw_key):
                status, body = _status_and_body(run(None))
            _store_answer(record, status, body)
    if not ours:
        return _replay(record, scope, fingerprint, raw_key)
    response = JsonResponse(body, status=status, safe=False)
    response[IDEMPOTENCY_HEADER] = raw_key
    return response


def _store_answer(record: IdempotencyRecord, status: int, body: Any) -> None:
    record.response_status = status
    record.response_body = body
    record.object_type = body.get("object", "") if isinstance(body, dict) else ""
    record.object_id = body.get("id", "") if isinstance(body, dict) else ""
    record.save(update_fields=["response_status", "response_body", "object_type", "object_id"])
