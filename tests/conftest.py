"""Shared fixtures: the environments and the standard cast, one user per role.

Alice is an Admin, Dave a Developer, Mona an Account Manager, Sam in Customer Support,
Vic a Viewer; Olga has no role at all. `live` and `sandbox` are two environments.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from tests import factories
from workflows.actions import registry

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
    return factories.EnvironmentFactory(slug="live")


@pytest.fixture
def sandbox(db):
    return factories.EnvironmentFactory(slug="sandbox")


@pytest.fixture
def alice(db):
    return factories.UserFactory(username="alice", role="Admin")


@pytest.fixture
def dave(db):
    return factories.UserFactory(username="dave", role="Developer")


@pytest.fixture
def mona(db):
    return factories.UserFactory(username="mona", role="Account Manager")


@pytest.fixture
def sam(db):
    return factories.UserFactory(username="sam", role="Customer Support")


@pytest.fixture
def vic(db):
    return factories.UserFactory(username="vic", role="Viewer")


@pytest.fixture
def olga(db):
    return factories.UserFactory(username="olga")


@pytest.fixture
def cast(alice, dave, mona, sam, vic, olga) -> dict:
    """The whole cast by user name, for tests that walk every role."""
    return {u.username: u for u in (alice, dave, mona, sam, vic, olga)}


# --- workflows shared by several folders --------------------------------------------------------


@pytest.fixture
def flaky():
    """The `tests.flaky` action (factories.flaky_action), failing until the test sets
    `flaky["fail"] = False`; unregistered afterwards so no other test sees it."""
    state = {"fail": True, "message": "Ledger said no: account frozen."}
    factories.flaky_action(state)
    yield state
    registry.unregister("tests.flaky")


@pytest.fixture
def flaky_workflow(live, alice, flaky):
    """The active "Ledger sync" workflow: tag the customer, then the flaky step."""
    return factories.WorkflowFactory(
        environment=live, definition=factories.flaky_definition(), created_by=alice
    )


@pytest.fixture
def region_workflow(live, alice):
    """The seed's region workflow, published and active in live."""
    return factories.WorkflowFactory(environment=live, created_by=alice)


@pytest.fixture
def region_draft(live, mona):
    """The region workflow as Mona created it: a draft, never published."""
    return factories.WorkflowFactory(environment=live, created_by=mona, publish=False)
