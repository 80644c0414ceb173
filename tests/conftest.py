"""Shared fixtures: the environments and the standard cast, one user per role.

Alice is an Admin, Dave a Developer, Mona an Account Manager, Sam in Customer Support,
Vic a Viewer; Olga has no role at all. `live` and `sandbox` are two environments.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tests import factories

# Real local servers for e-mail and HTTP tests (fixtures: smtp_server, smtp_settings, http_server).
pytest_plugins = ["tests.smtp", "tests.httpserver", "tests.webhook_receiver"]


def pytest_report_header(config) -> str:
    return f"Billflow database: {os.environ.get('DATABASE_URL') or 'SQLite (embedded default)'}"


@pytest.fixture(autouse=True)
def _postgres_marker(request) -> None:
    """Tests marked `postgres` need PostgreSQL; on SQLite they skip with a visible reason."""
    if request.node.get_closest_marker("postgres") is None:
        return
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://… to run it")


@pytest.fixture
def live(db):
    return factories.environment("live")


@pytest.fixture
def sandbox(db):
    return factories.environment("sandbox")


@pytest.fixture
def alice(db):
    return factories.user("alice", "Admin")


@pytest.fixture
def dave(db):
    return factories.user("dave", "Developer")


@pytest.fixture
def mona(db):
    return factories.user("mona", "Account Manager")


@pytest.fixture
def sam(db):
    return factories.user("sam", "Customer Support")


@pytest.fixture
def vic(db):
    return factories.user("vic", "Viewer")


@pytest.fixture
def olga(db):
    return factories.user("olga", None)
