"""Commits that do not wait for the disk: only for the autocommit statement that asks."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.models import Environment
from workflows.engine.store.statements import update_where


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_an_autocommit_update_skips_the_disk_wait_for_its_own_commit_only(transactional_db):
    environment = Environment.objects.create(slug="commits", name="Before")

    with CaptureQueriesContext(connection) as queries:
        changed = update_where(
            Environment, where={"id": environment.pk}, durable=False, name="After"
        )

    assert changed == 1
    [statement] = [q["sql"] for q in queries.captured_queries]
    assert "set_config('synchronous_commit', 'off', true)" in statement
    assert _synchronous_commit() == "on"  # the session's setting is untouched
    assert Environment.objects.get(pk=environment.pk).name == "After"


@pytest.mark.postgres
def test_inside_a_transaction_the_update_is_durable(transactional_db):
    environment = Environment.objects.create(slug="commits", name="Before")

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        update_where(Environment, where={"id": environment.pk}, durable=False, name="After")

    [statement] = [q["sql"] for q in queries.captured_queries]
    assert "synchronous_commit" not in statement
