from django.apps import AppConfig


class SlackActionsConfig(AppConfig):
    name = "slack_actions"
    verbose_name = "Slack actions (example custom-action app)"
