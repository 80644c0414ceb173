"""A definition's money guardrails and circuit breaker: what they say, and their rules.

    "guardrails": {"max_amount_per_run": {"usd": 50000}, "max_amount_per_day": {"usd": 500000},
                   "max_runs_per_hour": 100}
    "auto_deactivate": {"failure_rate": 0.5, "min_runs": 20, "window_minutes": 60}

Amounts are whole numbers in the currency's minor unit (50000 is 500.00 USD), per lower-case
three-letter currency code. The engine enforces the caps (`workflows/engine/guardrails.py`) and
the failure hook the breaker (`workflows/operations/breaker.py`); docs/workflows.md, "Money
guardrails" and "Circuit breaker".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

AMOUNT_CAPS = ("max_amount_per_run", "max_amount_per_day")
GUARDRAIL_KEYS = (*AMOUNT_CAPS, "max_runs_per_hour")
BREAKER_KEYS = ("failure_rate", "min_runs", "window_minutes")
CURRENCY = re.compile(r"^[a-z]{3}$")
# A cap beyond what a BIGINT total can hold is no cap anyone means.
MAX_AMOUNT = 10**15
MAX_RUNS_PER_HOUR = 1_000_000
MAX_WINDOW_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Caps:
    """The guardrails of a definition, typed; empty maps mean no cap of that kind."""

    per_run: dict[str, int] = field(default_factory=dict)
    per_day: dict[str, int] = field(default_factory=dict)
    runs_per_hour: int | None = None

    def __bool__(self) -> bool:
        return bool(self.per_run or self.per_day or self.runs_per_hour)


@dataclass(frozen=True)
class Breaker:
    failure_rate: float
    min_runs: int
    window_minutes: int


def caps(definition: dict) -> Caps:
    """The caps of a valid definition (none when it declares no guardrails)."""
    g = definition.get("guardrails") or {}
    return Caps(
        per_run=dict(g.get("max_amount_per_run") or {}),
        per_day=dict(g.get("max_amount_per_day") or {}),
        runs_per_hour=g.get("max_runs_per_hour"),
    )


def breaker(value: dict | None) -> Breaker | None:
    if not value:
        return None
    return Breaker(
        failure_rate=float(value["failure_rate"]),
        min_runs=int(value["min_runs"]),
        window_minutes=int(value["window_minutes"]),
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def guardrail_problems(definition: dict) -> list[tuple[str, str]]:
    """Every problem with the definition's `guardrails` and `auto_deactivate`, each as
    (field, sentence), the field named the way the JSON form spells it."""
    problems: list[tuple[str, str]] = []
    g = definition.get("guardrails")
    if g is not None:
        g = g if isinstance(g, dict) else {}  # not an object: the model said so
        for key in g:
            if key not in GUARDRAIL_KEYS:
                problems.append(
                    (f"guardrails.{key}", f"Unknown guardrail; known: {', '.join(GUARDRAIL_KEYS)}")
                )
        if isinstance(definition["guardrails"], dict) and not any(k in g for k in GUARDRAIL_KEYS):
            problems.append(("guardrails", f"Set at least one of {', '.join(GUARDRAIL_KEYS)}"))
        for key in AMOUNT_CAPS:
            if key in g:
                problems += _amount_cap_problems(f"guardrails.{key}", g[key])
        if "max_runs_per_hour" in g:
            runs = g["max_runs_per_hour"]
            if not _whole(runs) or not 1 <= runs <= MAX_RUNS_PER_HOUR:
                problems.append(
                    (
                        "guardrails.max_runs_per_hour",
                        f"Must be a whole number from 1 to {MAX_RUNS_PER_HOUR:,}",
                    )
                )
    b = definition.get("auto_deactivate")
    if isinstance(b, dict):  # not an object: the model said so
        for key in b:
            if key not in BREAKER_KEYS:
                problems.append(
                    (f"auto_deactivate.{key}", f"Unknown setting; known: {', '.join(BREAKER_KEYS)}")
                )
        for key in BREAKER_KEYS:
            if key not in b:
                problems.append((f"auto_deactivate.{key}", "Required"))
        rate = b.get("failure_rate")
        if "failure_rate" in b and (
            not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate <= 1
        ):
            problems.append(
                ("auto_deactivate.failure_rate", "Must be a number above 0 and at most 1 (0.5)")
            )
        if "min_runs" in b and (not _whole(b["min_runs"]) or b["min_runs"] < 1):
            problems.append(("auto_deactivate.min_runs", "Must be a whole number of at least 1"))
        minutes = b.get("window_minutes")
        if "window_minutes" in b and (
            not _whole(minutes) or not 1 <= minutes <= MAX_WINDOW_MINUTES
        ):
            problems.append(
                (
                    "auto_deactivate.window_minutes",
                    f"Must be a whole number of minutes from 1 to {MAX_WINDOW_MINUTES:,} (7 days)",
                )
            )
    return problems


def _amount_cap_problems(where: str, value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or not value:
        return [(where, 'Must be an object of amounts per currency, like {"usd": 50000}')]
    problems = []
    for currency, amount in value.items():
        if not CURRENCY.match(currency):
            problems.append(
                (
                    f"{where}.{currency}",
                    f"'{currency}' is not a currency: use a three-letter lower-case code (usd)",
                )
            )
        elif not _whole(amount) or not 1 <= amount <= MAX_AMOUNT:
            problems.append(
                (
                    f"{where}.{currency}",
                    "Must be a positive whole number in the currency's minor unit "
                    "(50000 is 500.00 USD)",
                )
            )
    return problems
