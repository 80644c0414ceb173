"""Retry policy for steps: which errors are retried, and after how long.

Exponential backoff with full jitter (`random.uniform(0, min(max, base * 2 ** (n - 1)))`),
bounded below by a tenth of the exponential value so two retries never happen back to back.

An outage (the mail server or an HTTP target unreachable, timing out or answering "try
later") lasts seconds to a minute, far longer than that quick schedule spends on its attempts.
For those errors the waits also double from attempt to attempt so that, whatever the jitter,
they add up to at least `OUTAGE_RETRY_SECONDS` over the step's attempts (docs/guarantees.md):
with the defaults, 4, 8, 16 and 32 s at least, a minute in all.
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


# Error types that mean the other side is down for now: an SMTP connection refused or a 4xx
# reply (`team.email`), an HTTP target unreachable or too slow (`http.post`).
OUTAGE_ERROR_TYPES = frozenset({"email_error", "connection_error", "timeout"})
# How much later than its lower bound an outage retry may be drawn (spreads a crowd of runs).
OUTAGE_JITTER = 0.25


def is_outage(error: dict | None) -> bool:
    return bool(error) and bool(error.get("retryable")) and error.get("type") in OUTAGE_ERROR_TYPES


def retry_delay_bounds(attempts: int, error: dict | None = None) -> tuple[float, float]:
    """The (shortest, longest) wait before the attempt after `attempts` started attempts,
    for a step that failed with `error` (its StepRun error record)."""
    base = float(settings.BILLFLOW["RETRY_BASE_SECONDS"])
    ceiling = float(settings.BILLFLOW["RETRY_MAX_SECONDS"])
    exponential = min(ceiling, base * 2 ** max(0, attempts - 1))
    low, high = exponential / 10, exponential
    if is_outage(error):
        # Doubling waits whose sum over the step's retries is the budget: the n-th retry waits
        # at least budget * 2**(n-1) / (2**retries - 1).
        budget = float(settings.BILLFLOW.get("OUTAGE_RETRY_SECONDS", 60.0))
        retries = max(1, step_max_attempts() - 1)
        share = budget * 2 ** (min(attempts, retries) - 1) / (2**retries - 1)
        low = max(low, share)
        high = max(high, share * (1 + OUTAGE_JITTER))
    return low, high


def retry_delay(attempts: int, error: dict | None = None) -> float:
    """Seconds to wait before the attempt after `attempts` started attempts (see the module)."""
    low, high = retry_delay_bounds(attempts, error)
    return random.uniform(low, high)


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
