"""Retry policy for steps: which errors are retried, and after how long.

Exponential backoff with full jitter (`random.uniform(0, min(max, base * 2 ** (n - 1)))`),
bounded below by a tenth of the exponential value so two retries never happen back to back.
"""

from __future__ import annotations

import random

from django.conf import settings
from django.db import OperationalError

from billing.errors import BillingError
from workflows.actions.registry import Action, ActionError
from workflows.engine.templating import TemplateError


def step_max_attempts() -> int:
    return int(settings.BILLFLOW["STEP_MAX_ATTEMPTS"])


def retry_delay(attempts: int) -> float:
    """Seconds to wait before the attempt after `attempts` started attempts."""
    base = float(settings.BILLFLOW["RETRY_BASE_SECONDS"])
    ceiling = float(settings.BILLFLOW["RETRY_MAX_SECONDS"])
    exponential = min(ceiling, base * 2 ** max(0, attempts - 1))
    return random.uniform(exponential / 10, exponential)


def error_details(exc: BaseException, action: Action | None = None) -> dict:
    """The StepRun error record {type, message, retryable} (plus code/param when known)."""
    if isinstance(exc, ActionError):
        retryable = action.is_retryable(exc) if action is not None else exc.retryable
        details = {"type": exc.type, "message": exc.message, "retryable": bool(retryable)}
        if exc.param:
            details["param"] = exc.param
    elif isinstance(exc, BillingError):
        details = {"type": exc.type, "message": exc.message, "retryable": bool(exc.retryable)}
        if exc.code:
            details["code"] = exc.code
        if exc.param:
            details["param"] = exc.param
    elif isinstance(exc, TemplateError):
        details = {"type": "template_error", "message": exc.message, "retryable": False}
    elif isinstance(exc, OperationalError):
        # Lock timeouts, deadlocks, lost connections: the transaction rolled back, try again.
        details = {"type": "database_error", "message": str(exc).strip(), "retryable": True}
    else:
        details = {
            "type": "internal_error",
            "message": f"{type(exc).__name__}: {exc}",
            "retryable": False,
        }
    return details
