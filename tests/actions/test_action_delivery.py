"""`delivery_send_once`: what makes e-mail and HTTP actions send once per idempotency key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from workflows.actions.delivery import delivery_send_once
from workflows.actions.registry import ActionError
from workflows.engine.store.forcing import force_rows
from workflows.models import Delivery


class Sender:
    def __init__(self, fail: ActionError | None = None) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self) -> dict:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return {"message_id": "<m1@example>", "sent": self.calls}


def _send(sender: Sender, key: str = "3/mail/") -> dict:
    return delivery_send_once(
        kind="email", idempotency_key=key, send=sender, in_progress_seconds=20
    )


def test_it_sends_once_and_returns_the_first_output_after(db):
    sender = Sender()

    assert _send(sender) == {"message_id": "<m1@example>", "sent": 1}
    assert _send(sender) == {"message_id": "<m1@example>", "sent": 1}
    assert sender.calls == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.message_id) == ("sent", "<m1@example>")


def test_a_failed_send_is_recorded_and_may_be_tried_again(db):
    failing = Sender(fail=ActionError("down", retryable=True))
    with pytest.raises(ActionError):
        _send(failing)
    assert Delivery.objects.get().status == "failed"
    assert Delivery.objects.get().error == "down"

    sender = Sender()
    _send(sender)
    assert sender.calls == 1
    assert (Delivery.objects.get().status, Delivery.objects.get().attempts) == ("sent", 2)


def test_it_waits_for_an_attempt_that_may_be_sending_right_now(db):
    force_rows(Delivery).create(kind="email", idempotency_key="3/mail/", claimed_at=timezone.now())
    sender = Sender()

    with pytest.raises(ActionError) as caught:
        _send(sender)

    assert caught.value.type == "delivery_in_progress"
    assert caught.value.retryable is True
    assert sender.calls == 0


def test_it_takes_over_a_claim_whose_worker_died_mid_send(db, settings):
    settings.BILLFLOW = {**settings.BILLFLOW, "LEASE_SECONDS": 10}
    force_rows(Delivery).create(
        kind="email",
        idempotency_key="3/mail/",
        claimed_at=timezone.now() - timedelta(seconds=6),  # older than half a lease
    )
    sender = Sender()

    _send(sender)

    assert sender.calls == 1
    assert Delivery.objects.get().status == "sent"


def test_keys_of_different_kinds_do_not_collide(db):
    email, http = Sender(), Sender()
    _send(email, key="run-failed/9")
    delivery_send_once(
        kind="slack", idempotency_key="run-failed/9", send=http, in_progress_seconds=5
    )

    assert (email.calls, http.calls) == (1, 1)
