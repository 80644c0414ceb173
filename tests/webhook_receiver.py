"""A webhook receiver on 127.0.0.1 that checks every request with Stripe's own SDK.

`webhook_receiver` yields a `WebhookReceiver`: a real HTTP server in a thread of the test
process (worker subprocesses reach it too). Each POST is verified with
`stripe.Webhook.construct_event(body, Stripe-Signature, secret)` as a Stripe user's receiver
would, and recorded with what was answered:

    receiver.secret = endpoint.secret        # the whsec_… the endpoint was created with
    receiver.script(500, 200)                # next answers; then `default` (200)
    receiver.script(HOLD)                    # keep the next request open, never answer it
    receiver.received                        # every request: body, header, event, answer
    receiver.acknowledged()                  # the requests answered 2xx
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest
import stripe

from tests.httpserver import ThreadedServer, serving

HOLD = "hold"
HOLD_LIMIT_SECONDS = 60.0


@dataclass
class Received:
    body: bytes
    signature: str
    event: stripe.Event | None  # None when the signature did not verify
    verify_error: str
    answered: int | None  # the status sent back; None for a request held until the end

    @property
    def event_id(self) -> str | None:
        return self.event.id if self.event is not None else None


class WebhookReceiver(ThreadedServer):
    def __init__(self) -> None:
        self.secret = ""
        self.default = 200
        self.replies: deque[int | str] = deque()
        self.received: list[Received] = []
        super().__init__()

    def url(self, path: str = "/stripe/webhooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *replies: int | str) -> None:
        with self.lock:
            self.replies.extend(replies)

    def acknowledged(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.answered is not None and 200 <= r.answered < 300]

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def _verify(self, body: bytes, signature: str) -> tuple[stripe.Event | None, str]:
        try:
            return stripe.Webhook.construct_event(body, signature, self.secret), ""
        except (stripe.SignatureVerificationError, ValueError) as exc:
            return None, str(exc)

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                signature = self.headers.get("Stripe-Signature", "")
                event, error = receiver._verify(body, signature)
                with receiver.lock:
                    reply = receiver.replies.popleft() if receiver.replies else receiver.default
                    if event is None:
                        reply = 400  # what a Stripe receiver answers to a bad signature
                    record = Received(body, signature, event, error, None)
                    receiver.received.append(record)
                if reply == HOLD:
                    receiver.released.wait(HOLD_LIMIT_SECONDS)
                    return  # never answered: the sender is gone by then
                with contextlib.suppress(ConnectionError):
                    payload = b'{"received": true}'
                    self.send_response(int(reply))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    with receiver.lock:
                        record.answered = int(reply)

            def log_message(self, format, *args) -> None:  # noqa: A002
                pass

        return Handler


@pytest.fixture
def webhook_receiver():
    yield from serving(WebhookReceiver())


@pytest.fixture
def webhook_settings(settings):
    """127.0.0.1 allowed (listed by its exact name, as http.post needs), quick retries."""
    settings.BILLFLOW = {
        **settings.BILLFLOW,
        "HTTP_ALLOWED_HOSTS": ["127.0.0.1"],
        "WEBHOOK_TIMEOUT_SECONDS": 2.0,
        "WEBHOOK_LEASE_SECONDS": 5.0,
        "WEBHOOK_RETRY_BASE_SECONDS": 0.05,
        "WEBHOOK_RETRY_MAX_SECONDS": 0.2,
        "WEBHOOK_RETRY_WINDOW_SECONDS": 60.0,
    }
    return settings
