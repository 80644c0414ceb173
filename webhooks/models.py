"""Webhook endpoints (Stripe's event destinations) and the record of every delivery to them.

An endpoint belongs to one environment and receives the events of that environment whose type
it lists (`"*"` for all). Each (endpoint, event) pair gets one `WebhookDelivery` row, written in
the transaction that records the event (webhooks/outbox.py): the delivery outbox. Each time a
worker sends it, a `WebhookAttempt` row records what happened: the delivery log.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from billing.models import Environment, Event


class WebhookEndpoint(models.Model):
    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"

    id = models.CharField(primary_key=True, max_length=40, editable=False)  # we_…
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    url = models.CharField(max_length=2048)
    description = models.TextField(blank=True)
    # Event types, or ["*"] for every type.
    enabled_events = models.JSONField(default=list)
    # The signing secret (whsec_…): the API shows it once, when the endpoint is created. It is
    # kept in clear because every delivery is signed with it.
    secret = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["environment", "status"], name="webhook_endpoint_env")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    @property
    def livemode(self) -> bool:
        return self.environment.livemode

    def receives(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events


class WebhookDelivery(models.Model):
    """One event for one endpoint: sent until the endpoint answers 2xx, or the window ends."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its first attempt or its next retry
        SENDING = "sending"  # claimed by a worker until `lease_expires_at`
        SUCCEEDED = "succeeded"  # the endpoint answered 2xx; never sent again by itself
        FAILED = "failed"  # retried for the whole window without a 2xx; given up

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=40, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by the back office's resend button; the next attempt is recorded as a resend.
    resend_requested = models.BooleanField(default=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "-created"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: its answer, or the error, or nothing (the worker stopped)."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    resend = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    response_body = models.CharField(max_length=1000, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
