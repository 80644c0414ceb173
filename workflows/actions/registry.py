"""The action registry: every step type `action` names one of these by key.

Built-in actions register themselves when `workflows.actions` is imported (from the app's
`ready()`); other Django apps call `register()` from their own `AppConfig.ready()`
(docs/custom-actions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Input field types the builder knows how to draw and validation knows how to check.
INPUT_TYPES = frozenset(
    {
        "string",  # one line of text
        "text",  # several lines of text
        "integer",
        "number",
        "boolean",
        "object",  # a JSON object
        "list",  # a JSON list
        "metadata",  # a Stripe metadata map: string keys and values
        "email_list",  # a list of e-mail addresses
        "user_list",  # a list of back-office users (usernames or e-mail addresses)
        "rows",  # [{"label": ..., "value": ...}] rows, e.g. in an e-mail body
        "url",
    }
)


@dataclass(frozen=True)
class InputField:
    name: str
    type: str = "string"
    required: bool = False
    choices: tuple[Any, ...] = ()
    help: str = ""
    label: str = ""
    # For ids of billing objects ("customer", "charge"…): a literal id is checked at save time
    # (right prefix; and that it exists, when the environment is known).
    object_type: str = ""

    def __post_init__(self) -> None:
        if self.type not in INPUT_TYPES:
            raise ValueError(f"Input field {self.name!r} has unknown type {self.type!r}")

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


@dataclass
class ActionContext:
    """What an action may know about the step it runs in."""

    environment: Any  # billing.models.Environment
    account: Any = None  # the connected billing.models.Account, or None for the platform
    idempotency_key: str = ""  # "run/step/iteration"
    run_id: int | None = None
    dry_run: bool = False
    # Objects the action changed: {"object", "id", "before", "after"}, only the changed fields.
    changed: list[dict] = field(default_factory=list)


class ActionError(Exception):
    """A step failure with a type the inspector shows and a flag the executor retries on."""

    def __init__(
        self, message: str, *, type: str = "action_error", retryable: bool = False, param: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.retryable = retryable
        self.param = param

    def as_dict(self) -> dict:
        return {
            "type": self.type,
            "message": self.message,
            "retryable": self.retryable,
            "param": self.param,
        }


class StepSkipped(Exception):
    """An action that decides not to act (a system step turned off, nobody to tell).

    The executor records the step as `skipped` with the reason as its output, and a restart
    treats it like a completed step.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Action:
    key: str
    label: str
    execute: Callable[[ActionContext, dict], dict]
    description: str = ""
    inputs: tuple[InputField, ...] = ()
    # A sample of the output, for the dynamic-field picker and for reference validation.
    output: dict = field(default_factory=dict)
    side_effects: bool = True
    # False for actions whose effect leaves the database (e-mail, HTTP): the executor runs
    # execute() outside the step's transaction and holds no locks meanwhile, then records the
    # result in a transaction of its own. Such actions make themselves idempotent
    # (workflows/actions/delivery.py). See docs/custom-actions.md.
    transactional: bool = True
    # A list source returns {"object": "list", "data": [...], "has_more": bool} and takes
    # `limit` and `starting_after`, so a foreach can page through it.
    is_list_source: bool = False
    # Error types (ActionError.type) that are retried even when the error does not say so.
    retryable_error_types: tuple[str, ...] = ()
    # Extra save-time checks: (params) -> [(param name, message)]; literal values only.
    validate_params: Callable[[dict], list[tuple[str, str]]] | None = None
    group: str = ""
    # Declared by actions that move money (refunds, credits, payments): the money the step
    # would move with these resolved params, read before its effect and writing nothing:
    # [(currency, amount in the minor unit)]. Money guardrails check it before the effect;
    # a backtest adds it up per step. See docs/custom-actions.md.
    moves_money: Callable[[ActionContext, dict], list[tuple[str, int]]] | None = None

    def input(self, name: str) -> InputField | None:
        return next((f for f in self.inputs if f.name == name), None)

    def is_retryable(self, error: ActionError) -> bool:
        return error.retryable or error.type in self.retryable_error_types


_REGISTRY: dict[str, Action] = {}


def register(action: Action, *, replace: bool = False) -> Action:
    """Add an action. A second action with the same key is an error unless `replace`."""
    if not replace and action.key in _REGISTRY and _REGISTRY[action.key] is not action:
        raise ValueError(f"An action with key {action.key!r} is already registered")
    _REGISTRY[action.key] = action
    return action


def unregister(key: str) -> None:
    _REGISTRY.pop(key, None)


def get(key: str) -> Action | None:
    return _REGISTRY.get(key)


def all_actions() -> list[Action]:
    return sorted(_REGISTRY.values(), key=lambda a: a.key)
