"""The retry schedule keeps the promise of docs/guarantees.md: with the default settings, a step
whose mail server or HTTP target is down retries over at least a minute before it gives up
(issue 14, item 9: five attempts used to be spent in under five seconds)."""

from __future__ import annotations

import pytest

from config.settings import base
from workflows.engine.retry import retry_delay, retry_delay_bounds

SMTP_DOWN = {
    "type": "email_error",
    "message": "Could not send the e-mail: ConnectionRefusedError: [Errno 111] Connection refused",
    "retryable": True,
}
HTTP_DOWN = {"type": "connection_error", "message": "POST to x failed", "retryable": True}
HTTP_HUNG = {"type": "timeout", "message": "POST to x timed out after 10 s.", "retryable": True}
DEADLOCK = {"type": "database_error", "message": "deadlock detected", "retryable": True}


@pytest.fixture
def default_settings(settings):
    """The production defaults (config/settings/base.py), not the tests' scaled schedule."""
    settings.BILLFLOW = dict(base.BILLFLOW)
    return settings


@pytest.mark.parametrize("error", [SMTP_DOWN, HTTP_DOWN, HTTP_HUNG], ids=lambda e: e["type"])
def test_an_outage_is_ridden_out_for_at_least_a_minute_with_the_default_settings(
    default_settings, error
) -> None:
    attempts = default_settings.BILLFLOW["STEP_MAX_ATTEMPTS"]
    assert attempts == 5
    shortest = sum(retry_delay_bounds(n, error)[0] for n in range(1, attempts))
    assert shortest >= 60.0
    # ... and every drawn schedule is at least that long.
    for _ in range(200):
        assert sum(retry_delay(n, error) for n in range(1, attempts)) >= 60.0


def test_outage_retries_start_soon_and_grow(default_settings) -> None:
    lows = [retry_delay_bounds(n, SMTP_DOWN)[0] for n in range(1, 5)]
    assert lows == sorted(lows)
    assert lows[0] <= 5.0  # a blip is retried within seconds
    highs = [retry_delay_bounds(n, SMTP_DOWN)[1] for n in range(1, 5)]
    assert sum(highs) <= 120.0  # and a dead server is given up on within two minutes


def test_other_retryable_errors_keep_the_quick_schedule(default_settings) -> None:
    low, high = retry_delay_bounds(1, DEADLOCK)
    assert high <= 1.0
    assert sum(retry_delay_bounds(n, DEADLOCK)[1] for n in range(1, 5)) <= 15.0


def test_the_outage_budget_follows_its_setting(default_settings) -> None:
    default_settings.BILLFLOW = {**default_settings.BILLFLOW, "OUTAGE_RETRY_SECONDS": 6.0}
    shortest = sum(retry_delay_bounds(n, SMTP_DOWN)[0] for n in range(1, 5))
    assert 6.0 <= shortest < 7.0
