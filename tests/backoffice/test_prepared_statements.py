"""Prepared statements (PostgreSQL's default here) keep working when a release adds a column.

A statement run a few times on a connection is prepared once. When a migration run from
another process adds a column to a table the statement reads, PostgreSQL plans it again, but
refuses one whose result would change shape ("cached plan must not change result type"): the
hot paths' own SQL therefore names its columns instead of `*`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from backoffice.auth_backend import active_users_named
from tests import factories
from workflows.engine.leases import lease_claim
from workflows.engine.runs import run_start_manual
from workflows.operations.bench import database_url

MANUAL = {
    "name": "Claimed many times",
    "trigger": {"type": "manual", "input": []},
    "steps": [{"id": "yes", "type": "condition", "condition": {"all": []}}],
}


@contextlib.contextmanager
def column_added_by_another_process(table: str) -> Iterator[None]:
    """A deploy's migration on its own connection; the column is gone again afterwards."""
    url = database_url().replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as deploy:
        deploy.execute(f"ALTER TABLE {table} ADD COLUMN added_by_a_later_release integer")
        try:
            yield
        finally:
            deploy.execute(f"ALTER TABLE {table} DROP COLUMN added_by_a_later_release")


def _prepared(fragment: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return any(fragment in statement for (statement,) in cursor.fetchall())


@pytest.mark.postgres
def test_the_claim_survives_a_column_added_to_runs(transactional_db, live, alice):
    assert connection.settings_dict["OPTIONS"].get("server_side_binding") is True
    workflow = factories.workflow_active(live, MANUAL, alice)

    def claim():
        run = run_start_manual(workflow=workflow, input={}, user=alice)
        return lease_claim(run_id=run.pk, owner="worker")

    for _ in range(6):  # prepared from the fifth execution on
        assert claim() is not None
    assert _prepared("claimed AS")
    with column_added_by_another_process("workflows_run"):
        assert claim() is not None


@pytest.mark.postgres
def test_reading_recipients_survives_a_column_added_to_users(transactional_db, mona):
    for _ in range(6):
        assert active_users_named("mona") == [mona]
    assert _prepared("LOWER(")
    with column_added_by_another_process("auth_user"):
        assert active_users_named("mona") == [mona]
