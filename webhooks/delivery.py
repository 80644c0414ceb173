"""Sending a delivery: claim it with a lease, POST the signed event, record the answer.

The claim is the engine's delivery idea (workflows/actions/delivery.py) with a lease: one short
transaction moves the delivery to `sending` for `WEBHOOK_LEASE_SECONDS` and writes the attempt
to the log. The POST runs outside any transaction. Then one transaction records the answer:
2xx marks the delivery `succeeded` (never sent again by itself); anything else puts it back to
`pending` with the next retry, or `failed` once the retry window is over.

A worker killed mid-send leaves the delivery `sending` with an attempt that has no answer;
when the lease expires the sweep hands it to another worker, which sends it again. So a
delivery is sent at least once, and after a 2xx at most once more: only when a worker dies
between the endpoint's 2xx and the sent mark (one database round trip), or when a send outlasts
the lease (the timeout is at most half of it, which settings enforce).

The body is the event exactly as `GET /api/v1/events/{id}` returns it, signed as Stripe signs:
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's
secret>`, so `stripe.Webhook.construct_event` verifies it. The target URL passes the same
allow-list and address checks as `http.post`, and the connection goes to the checked address.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing.events import event_envelope
from billing.models import Event
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from workflows.actions.deadline import Deadline, httpx_trace
from workflows.actions.http_post import _target, signature_header
from workflows.actions.registry import ActionError

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
USER_AGENT = "Billflow-Webhooks/1"
# Characters of an endpoint's answer kept in the delivery log.
RESPONSE_LIMIT = 1000


def _setting(name: str) -> float:
    return float(settings.BILLFLOW[name])


def event_payload(event: Event) -> bytes:
    """The event's JSON, byte for byte what `GET /api/v1/events/{id}` answers (JsonResponse)."""
    return json.dumps(event_envelope(event), cls=DjangoJSONEncoder).encode()


def retry_delay(attempt: int) -> float:
    """Seconds before the retry after failed attempt `attempt` (1, 2, …): exponential with
    jitter, a random time in [d/2, d] with d = min(MAX, BASE * 2**(attempt-1))."""
    ceiling = min(
        _setting("WEBHOOK_RETRY_MAX_SECONDS"),
        _setting("WEBHOOK_RETRY_BASE_SECONDS") * 2 ** min(attempt - 1, 40),
    )
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class Answer:
    status_code: int | None = None
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_post(*, url: str, body: bytes, secret: str, timeout: float) -> Answer:
    """POST `body` signed with `secret` to `url` (allow-listed, pinned); never raises."""
    allowed = list(settings.BILLFLOW.get("HTTP_ALLOWED_HOSTS", []))
    try:
        pinned, host_header, host = _target(url, allowed)
    except ActionError as exc:
        return Answer(error=exc.message)
    except ValueError as exc:  # a port out of range, an unparsable address
        return Answer(error=f"{url!r} is not a valid URL: {exc}")
    headers = {
        "Host": host_header,
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret=secret, timestamp=int(time.time()), body=body),
    }
    # `timeout` bounds the whole send, not each read (a receiver trickling its answer must not
    # hold the delivery past its claim): a watchdog shuts the connection down when it is up.
    deadline = Deadline(timeout)
    extensions: dict = {"trace": httpx_trace(deadline)}
    if pinned.scheme == "https":
        extensions["sni_hostname"] = host
    try:
        # Redirects are not followed (Stripe does not either): a 3xx is a failed attempt.
        with (
            deadline,
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= RESPONSE_LIMIT:
                    break
            text = received[:RESPONSE_LIMIT].decode("utf-8", errors="replace")
            return Answer(status_code=response.status_code, body=text)
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException) or deadline.expired:
            return Answer(error=f"POST to {host} timed out after {timeout:g} s.")
        return Answer(error=f"POST to {host} failed: {exc}")


def _claim(delivery_id: int, now: datetime) -> tuple[WebhookDelivery, WebhookAttempt, str] | None:
    """Take the delivery if it is due (or its last claim expired); None when it is not ours."""
    owner = uuid.uuid4().hex
    lease = timedelta(seconds=_setting("WEBHOOK_LEASE_SECONDS"))
    due = Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=WebhookDelivery.Status.SENDING, lease_expires_at__lt=now
    )
    with transaction.atomic():
        # The row lock makes a rival claimer wait, then find the delivery no longer due.
        delivery = WebhookDelivery.objects.select_for_update().filter(due, pk=delivery_id).first()
        if delivery is None:
            return None
        resend = delivery.resend_requested
        taken = WebhookDelivery.objects.filter(due, pk=delivery_id).update(
            status=WebhookDelivery.Status.SENDING,
            lease_owner=owner,
            lease_expires_at=now + lease,
            attempts=delivery.attempts + 1,
            resend_requested=False,
        )
        if taken != 1:
            return None
        delivery.attempts += 1
        delivery.status = WebhookDelivery.Status.SENDING
        attempt = WebhookAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, resend=resend, started_at=now
        )
    return delivery, attempt, owner


def _record(delivery: WebhookDelivery, attempt: WebhookAttempt, owner: str, answer: Answer) -> str:
    """Write the attempt's answer and the delivery's next state in one transaction."""
    now = timezone.now()
    started = attempt.started_at
    if answer.ok:
        outcome = WebhookDelivery.Status.SUCCEEDED
        changes: dict = {"delivered_at": now, "next_attempt_at": None}
    elif now >= delivery.created + timedelta(seconds=_setting("WEBHOOK_RETRY_WINDOW_SECONDS")):
        outcome = WebhookDelivery.Status.FAILED  # retried for the whole window: given up
        changes = {"next_attempt_at": None}
    else:
        outcome = WebhookDelivery.Status.PENDING
        changes = {"next_attempt_at": now + timedelta(seconds=retry_delay(delivery.attempts))}
    error = answer.error or ("" if answer.ok else f"The endpoint answered {answer.status_code}.")

    def write() -> None:
        with transaction.atomic():
            WebhookAttempt.objects.filter(pk=attempt.pk).update(
                finished_at=now,
                status_code=answer.status_code,
                error=answer.error[:1000],
                response_body=answer.body[:RESPONSE_LIMIT],
                duration_ms=max(0, int((now - started).total_seconds() * 1000)),
            )
            # Only while the claim is still ours: a worker whose lease was taken over leaves
            # the delivery to its new owner.
            WebhookDelivery.objects.filter(
                pk=delivery.pk, lease_owner=owner, status=WebhookDelivery.Status.SENDING
            ).update(
                status=outcome,
                lease_owner="",
                lease_expires_at=None,
                last_status_code=answer.status_code,
                last_error=error[:1000],
                **changes,
            )

    try:
        write()
    except (OperationalError, InterfaceError):
        # The POST is out: without this record a 2xx would be sent again. A connection that
        # died meanwhile is replaced once (as the engine's delivery mark does).
        if connection.in_atomic_block:
            raise
        connection.close()
        write()
    return outcome


def webhook_deliver(*, delivery_id: int) -> str:
    """One attempt of a delivery, if it is due and nobody else holds it; returns the outcome
    (`succeeded`, `pending` for a retry, `failed`, or `skipped`)."""
    claimed = _claim(delivery_id, timezone.now())
    if claimed is None:
        return "skipped"
    delivery, attempt, owner = claimed
    endpoint = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).first()
    event = Event.objects.select_related("environment").filter(pk=delivery.event_id).first()
    if endpoint is None or event is None:
        return "skipped"  # deleted meanwhile, with its deliveries
    answer = webhook_post(
        url=endpoint.url,
        body=event_payload(event),
        secret=endpoint.secret,
        timeout=_setting("WEBHOOK_TIMEOUT_SECONDS"),
    )
    outcome = _record(delivery, attempt, owner, answer)
    if not answer.ok:
        logger.info(
            "webhook delivery %s (%s to %s) attempt %s: %s",
            delivery.pk,
            event.pk,
            endpoint.pk,
            attempt.number,
            answer.error or answer.status_code,
        )
    return outcome
