"""`once_more_if_disconnected`: a connection found dead is replaced once; other errors stand."""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection

from workflows.engine.store.reconnect import once_more_if_disconnected
from workflows.operations.bench import database_url


def _backend() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    with psycopg.connect(database_url().replace("postgres://", "postgresql://")) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.postgres
def test_it_replaces_a_connection_that_died_and_runs_the_statement_again(transactional_db):
    dead = _backend()
    _terminate(dead)

    assert once_more_if_disconnected(_backend) != dead


def test_it_leaves_an_error_of_a_live_connection_alone(db):
    calls = []

    def deadlock() -> None:
        calls.append(1)
        raise OperationalError("deadlock detected")

    with pytest.raises(OperationalError, match="deadlock"):
        once_more_if_disconnected(deadlock)
    assert calls == [1]
