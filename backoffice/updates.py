"""`update_where`: a small UPDATE without the ORM's query building, for the hot paths.

The engine renews a run's lease and ends it, and every billing write saves the fields it
changed (`save_fields`). Building those statements through `QuerySet.update()` or
`save(update_fields=…)` cost more than PostgreSQL took to run them (measured: 0.41 ms against
0.18 ms for a lease renewal), so this builds the SQL once per shape and adapts each value
through its model field, as `save()` does. Equality filters only; anything richer stays with
the ORM.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models

from backoffice.commits import NO_WAIT_CTE, commit_without_waiting
from backoffice.writebehind import defer

_STATEMENTS: dict[tuple, tuple[str, list[models.Field]]] = {}


def _statement(
    model: type[models.Model], names: tuple[str, ...], filters: tuple[str, ...], no_wait: bool
) -> tuple[str, list[models.Field]]:
    key = (model, names, filters, connection.vendor, no_wait)
    cached = _STATEMENTS.get(key)
    if cached is None:
        meta, quote = model._meta, connection.ops.quote_name
        fields = [meta.get_field(name) for name in (*names, *filters)]
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields[: len(names)])
        conditions = " AND ".join(f"{quote(f.column)} = %s" for f in fields[len(names) :])
        head, source = (f"WITH {NO_WAIT_CTE} ", " FROM no_wait") if no_wait else ("", "")
        sql = f"{head}UPDATE {quote(meta.db_table)} SET {assignments}{source} WHERE {conditions}"
        cached = _STATEMENTS[key] = (sql, fields)
    return cached


def _prepared(
    model: type[models.Model], where: dict[str, Any], durable: bool, values: dict[str, Any]
) -> tuple[str, list]:
    if not where or not values:
        raise ValueError("update_where needs at least one value and one filter")
    db = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per use
    no_wait = commit_without_waiting(db, durable=durable)
    sql, fields = _statement(model, tuple(values), tuple(where), no_wait)
    given = [*values.values(), *where.values()]
    return sql, [
        field.get_db_prep_save(value, db) for field, value in zip(fields, given, strict=True)
    ]


def update_where(
    model: type[models.Model], *, where: dict[str, Any], durable: bool = True, **values: Any
) -> int:
    """`UPDATE model SET values WHERE field = value AND …`; returns the number of rows changed.

    Foreign keys are given by their primary key value (`run=5`). `durable=False`: an
    autocommit update whose commit need not wait for the disk (`backoffice.commits`); inside a
    transaction it is ignored, as it would cover the whole transaction.
    """
    sql, params = _prepared(model, where, durable, values)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _one_row(cursor) -> None:
    if cursor.rowcount != 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")


def save_fields(obj: models.Model, names: list[str]) -> None:
    """`obj.save(update_fields=names)` with the statement built once per shape. Each field's
    `pre_save` runs (an `auto_now` stamp is set), but, as with `QuerySet.update()`, no
    signal is sent and no `save()` override is called. Inside `deferred_writes()` the UPDATE
    goes with the transaction's next statement (backoffice/writebehind.py)."""
    meta = obj._meta
    values = {name: meta.get_field(name).pre_save(obj, False) for name in names}
    sql, params = _prepared(type(obj), {meta.pk.name: obj.pk}, True, values)
    if defer(sql, params, check=_one_row):
        return
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        _one_row(cursor)
