"""Writes nobody waits for, sent with the next statement in one round trip (PostgreSQL).

Inside a workflow step's transaction a billing change ends with writes whose answer no one
needs before the step's success mark: the object's UPDATE and its event's INSERT. Each cost a
round trip of its own. Inside `deferred_writes()` they are queued instead (`defer`), and the
next statement of the transaction, whatever it is and whoever sends it, carries them: it is
sent in one psycopg pipeline after them, so the server runs them in order and answers all at
once. The queue is also sent when the block ends, before the transaction can commit.

Nothing else changes: the statements run in the order they were issued, a failing write fails
the statement that carried it with Django's own exception (the transaction is lost either
way), and an UPDATE that must change one row is checked once its answer is in. Outside the
block, on SQLite, or with client-side parameter binding, `defer` declines and the caller
executes at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS, connections

# (sql, params, check): `check(cursor)` runs once the answer is in.
Write = tuple[str, list, Callable | None]

_queue: ContextVar[list[Write] | None] = ContextVar("deferred_writes", default=None)


def _pipelines(db) -> bool:
    """Pipelines need PostgreSQL and server-side parameters (config/env.py's default)."""
    return db.vendor == "postgresql" and bool(
        db.settings_dict["OPTIONS"].get("server_side_binding")
    )


def defer(sql: str, params: list, check: Callable | None = None) -> bool:
    """Queue a write for the next statement; False when the caller must execute it now."""
    queue = _queue.get()
    if queue is None:
        return False
    queue.append((sql, params, check))
    return True


@contextlib.contextmanager
def deferred_writes() -> Iterator[None]:
    """Inside a transaction: writes `defer`red here go with the next statement."""
    db = connections[DEFAULT_DB_ALIAS]
    if not _pipelines(db) or not db.in_atomic_block:
        yield
        return
    queue: list[Write] = []
    token = _queue.set(queue)

    def carried(execute, sql, params, many, context):
        if not queue:
            return execute(sql, params, many, context)
        return _send(db, queue, lambda: execute(sql, params, many, context))

    try:
        with db.execute_wrapper(carried):
            yield
            if queue:
                _send(db, queue, None)
    finally:
        _queue.reset(token)


def _send(db, queue: list[Write], statement: Callable | None):
    """The queued writes, then `statement`, in one pipeline: one round trip."""
    writes = list(queue)
    queue.clear()
    sent = []
    result = None
    with db.wrap_database_errors, db.connection.pipeline():
        for sql, params, check in writes:
            cursor = db.cursor()  # through Django, so the write is logged like any other
            cursor.execute(sql, params)
            sent.append((cursor, check))
        if statement is not None:
            result = statement()
    for cursor, check in sent:
        if check is not None:
            check(cursor)
        cursor.close()
    return result
