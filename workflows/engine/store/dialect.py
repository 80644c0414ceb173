"""The one place that knows PostgreSQL from SQLite.

PostgreSQL gives the engine row locks, `FOR UPDATE SKIP LOCKED`, data-modifying CTEs (a claim
that loads the run, a step's start that renews the lease), commits that skip the disk wait,
and typed `VALUES`. SQLite has one writer at a time, so the same guarantees hold with plain
statements there. Everything else in the store asks this module instead of
`connection.vendor`.
"""

from __future__ import annotations

from django.db import models


def is_postgres(db) -> bool:
    """Row locks, CTEs around writes, `synchronous_commit`: the PostgreSQL statements."""
    return db.vendor == "postgresql"


def vendor(db) -> str:
    """Part of every cached statement's key: the same shape differs per database."""
    return db.vendor


def row_lock(db) -> str:
    """` FOR UPDATE` where the database has row locks (SQLite locks the whole database)."""
    return " FOR UPDATE" if is_postgres(db) else ""


def typed_value(field: models.Field, db) -> str:
    """A placeholder for `VALUES` in a sub-select, which takes its column types from the
    values on PostgreSQL: cast it to the column's type."""
    return f"CAST(%s AS {field.db_type(db)})" if is_postgres(db) else "%s"


def after_bare_select(db) -> str:
    """SQLite reads `ON CONFLICT` after a `SELECT` without `WHERE` as a join clause."""
    return "" if is_postgres(db) else " WHERE TRUE"


def skips_locked_rows(db) -> bool:
    """The queue's one-statement claim (`FOR UPDATE SKIP LOCKED`)."""
    return bool(db.features.has_select_for_update_skip_locked)


def in_list(db, values: list) -> tuple[str, list]:
    """`<column> …` matching any of `values`, and its parameters: one array parameter on
    PostgreSQL (short to build and to parse whatever the count), a placeholder each on SQLite."""
    if is_postgres(db):
        return "= ANY(%s)", [list(values)]
    return f"IN ({', '.join(['%s'] * len(values))})", list(values)


def key_lock(db) -> str | None:
    """A statement taking a transaction-scoped lock on one text key (released at commit), or
    None where writers are serialised anyway (SQLite)."""
    if is_postgres(db):
        return "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
    return None
