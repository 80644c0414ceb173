from __future__ import annotations

from django.apps import AppConfig


class SlackActionsConfig(AppConfig):
    """An example of a custom-action app: it adds `slack.post_message` to the action registry."""

    name = "slack_actions"
    verbose_name = "Slack actions (example custom-action app)"

    def ready(self) -> None:
        # Importing the module registers the action; the registry is filled once per process.
        from slack_actions import actions  # noqa: F401
