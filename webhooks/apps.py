from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhook endpoints"

    def ready(self) -> None:
        # Connects the receivers that tell every process when an endpoint changes.
        from webhooks import outbox  # noqa: F401
