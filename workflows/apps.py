from __future__ import annotations

from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Built-in actions register themselves on import; custom-action apps do the same in
        # their own ready().
        from workflows.actions import load_builtin_actions

        load_builtin_actions()
