"""Workflow actions: the registry (`workflows.actions.registry`) and the built-in actions.

`load_builtin_actions()` is called from the app's `ready()`; it imports every built-in module,
each of which registers its actions.
"""

from __future__ import annotations

import importlib

BUILTIN_MODULES = (
    "workflows.actions.billing_objects",
    "workflows.actions.team_email",
    "workflows.actions.http_post",
    "workflows.actions.system_steps",
)


def load_builtin_actions() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
