from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The back office's top floor: what needs billing, workflows and webhooks together (the
    session's environment, the admin site's environment pages, demo data). No models."""

    name = "console"
    verbose_name = "Console"
