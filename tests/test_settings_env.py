"""Start-up stops with an error naming the variable when a setting has a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check_with(**overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **overrides, "DJANGO_SETTINGS_MODULE": "config.settings.base"}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "nosuchdb://x/y"),
        ("QUEUE_BROKER", "rabbit"),
        ("EMAIL_URL", "pigeon://coop"),
        ("DEBUG", "maybe"),
        ("BILLFLOW_MAX_STEPS", "twelve"),
    ],
)
def test_it_names_the_variable_with_a_bad_value(variable: str, value: str) -> None:
    result = _check_with(**{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


def test_it_requires_a_secret_key_when_debug_is_off() -> None:
    result = _check_with(DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_it_starts_with_good_values() -> None:
    result = _check_with(QUEUE_BROKER="redis", EMAIL_URL="smtp://127.0.0.1:2525")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("variable", ["BILLFLOW_HTTP_TIMEOUT_SECONDS", "EMAIL_TIMEOUT_SECONDS"])
def test_it_refuses_a_send_timeout_longer_than_half_the_lease(variable: str) -> None:
    result = _check_with(**{variable: "40", "BILLFLOW_LEASE_SECONDS": "60"})
    assert result.returncode != 0
    assert f"{variable} (40 s) must be at most half of BILLFLOW_LEASE_SECONDS" in result.stderr
