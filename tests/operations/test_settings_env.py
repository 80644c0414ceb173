"""Start-up stops with an error naming the variable when a setting has a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
        ("DATABASE_PREPARED_STATEMENTS", "sometimes"),
        ("DATABASE_HEALTH_CHECKS", "often"),
        ("Q_RECYCLE", "never"),
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


POSTGRES = "postgres://billflow@db.internal:5432/billflow"


@pytest.fixture
def config(monkeypatch):
    from config import env as config_env

    def read(argv: list[str], **variables: str) -> dict:
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setenv("DATABASE_URL", POSTGRES)
        for name in ("DATABASE_PREPARED_STATEMENTS", "DATABASE_HEALTH_CHECKS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return config_env.database_config(ROOT / "var" / "unused.sqlite3")

    return read


def test_postgresql_uses_prepared_statements_unless_turned_off(config) -> None:
    options = config(["manage.py", "runserver"])["OPTIONS"]
    assert (options["server_side_binding"], options["prepare_threshold"]) == (True, 5)
    turned_off = config(["manage.py", "runserver"], DATABASE_PREPARED_STATEMENTS="false")
    assert "server_side_binding" not in turned_off.get("OPTIONS", {})


def test_only_worker_processes_skip_the_connection_health_check(config) -> None:
    assert config(["manage.py", "runserver"])["CONN_HEALTH_CHECKS"] is True
    assert config(["manage.py", "qcluster"])["CONN_HEALTH_CHECKS"] is False
    forced = config(["manage.py", "qcluster"], DATABASE_HEALTH_CHECKS="true")
    assert forced["CONN_HEALTH_CHECKS"] is True
