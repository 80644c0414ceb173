"""The store's SQL, built once per shape from the models' `_meta`.

No table or column name is written out anywhere in the store's statements: each comes from the
model's `_meta`, and a model's columns are always all its concrete fields, so a field added
with a default (and its migration) is read, inserted and returned with no other change.

Each statement is named and cached per (name, database, shape): the ORM's query building cost
more than PostgreSQL took to run these (0.41 ms against 0.18 ms for a lease renewal), and a
prepared statement is reused only when its text repeats. Values go through their field's
`get_db_prep_save`, and rows come back through the field converters, as the ORM's own writes
and reads do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.sql import Query

from workflows.engine.store import dialect
from workflows.engine.store.commits import NO_WAIT_CTE, commit_without_waiting

M = TypeVar("M", bound=models.Model)

_STATEMENTS: dict[tuple, Any] = {}


def default_db():
    """The default connection itself: every attribute read through the `connection` proxy is
    a thread-local lookup, about 6% of a worker's Python on the hot path."""
    return connections[DEFAULT_DB_ALIAS]


def named(name: str, shape: tuple, build: Callable[[], Any], db=None) -> Any:
    """The statement `name` of this `shape`, built by `build()` the first time."""
    key = (name, dialect.vendor(db or default_db()), shape)
    cached = _STATEMENTS.get(key)
    if cached is None:
        cached = _STATEMENTS[key] = build()
    return cached


def table(model: type[models.Model], db=None) -> str:
    return (db or default_db()).ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], name: str, alias: str = "", db=None) -> str:
    """The quoted column of field `name` (`pk` for the primary key), qualified by `alias`."""
    meta = model._meta
    field = meta.pk if name == "pk" else meta.get_field(name)
    quoted = (db or default_db()).ops.quote_name(field.column)
    return f"{alias}.{quoted}" if alias else quoted


def columns_of(model: type[models.Model], alias: str = "", db=None) -> str:
    """All the model's columns, in the order `from_row` reads them (qualified by `alias`)."""
    quote = (db or default_db()).ops.quote_name
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote(f.column) for f in model._meta.concrete_fields)


def width(model: type[models.Model]) -> int:
    """How many values `columns_of(model)` yields."""
    return len(model._meta.concrete_fields)


def _converters(model: type[models.Model], db) -> tuple[list[str], list]:
    """The attnames of the model's columns, in order, and the converters of those that have
    any, as the ORM's compiler applies them to what the database returns."""

    def build() -> tuple[list[str], list]:
        meta = model._meta
        found_all = []
        for index, field in enumerate(meta.concrete_fields):
            col = field.get_col(meta.db_table)
            found = db.ops.get_db_converters(col) + field.get_db_converters(db)
            if found:
                found_all.append((index, col, found))
        return [f.attname for f in meta.concrete_fields], found_all

    return named("converters", (model, width(model)), build, db)


def from_row(model: type[M], row: tuple | list) -> M:
    """An instance from a row that starts with `columns_of(model)` (extra values are left)."""
    db = default_db()
    attnames, converters = _converters(model, db)
    values = list(row[: len(attnames)])
    for index, col, found in converters:
        for converter in found:
            values[index] = converter(values[index], col, db)
    return model.from_db(db.alias, attnames, values)


def partial_instance(model: type[M], **values: Any) -> M:
    """An instance with these field values (by attname) as the database returned them; the
    other fields are deferred (read when first used), as with `.only()`."""
    return model.from_db(
        DEFAULT_DB_ALIAS,
        list(values),
        [values.get(f.attname, models.DEFERRED) for f in model._meta.concrete_fields],
    )


# --- UPDATE … SET … WHERE field = value AND … -----------------------------------------------


def update_where(
    model: type[models.Model], *, where: dict[str, Any], durable: bool = True, **values: Any
) -> int:
    """`UPDATE model SET values WHERE field = value AND …`; the number of rows changed.

    Foreign keys are given by their primary key value (`run=5`). `durable=False`: an
    autocommit update whose commit need not wait for the disk (`commits.py`); inside a
    transaction it is ignored, as it would cover the whole transaction.
    """
    if not where or not values:
        raise ValueError("update_where needs at least one value and one filter")
    db = default_db()
    no_wait = commit_without_waiting(db, durable=durable)
    names, filters = tuple(values), tuple(where)

    def build() -> tuple[str, list[models.Field]]:
        meta, quote = model._meta, db.ops.quote_name
        fields = [meta.pk if n == "pk" else meta.get_field(n) for n in (*names, *filters)]
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields[: len(names)])
        conditions = " AND ".join(f"{quote(f.column)} = %s" for f in fields[len(names) :])
        head, source = (f"WITH {NO_WAIT_CTE} ", " FROM no_wait") if no_wait else ("", "")
        sql = f"{head}UPDATE {table(model, db)} SET {assignments}{source} WHERE {conditions}"
        return sql, fields

    sql, fields = named("update_where", (model, names, filters, no_wait), build, db)
    given = [*values.values(), *where.values()]
    params = [f.get_db_prep_save(v, db) for f, v in zip(fields, given, strict=True)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- INSERT, and INSERT … ON CONFLICT DO NOTHING RETURNING ----------------------------------


def _conflict_target(db, meta, unique: tuple[str, ...], constraint: str) -> tuple[str, list]:
    """`(columns)`, plus `WHERE predicate` for a partial unique index (the database matches
    the index by both)."""
    condition = None
    if constraint:
        found = [c for c in meta.constraints if c.name == constraint]
        if not found or not isinstance(found[0], models.UniqueConstraint):
            raise ValueError(f"{meta.label} has no unique constraint named {constraint!r}")
        unique, condition = tuple(found[0].fields), found[0].condition
    columns = ", ".join(db.ops.quote_name(meta.get_field(n).column) for n in unique)
    if condition is None:
        return f"({columns})", []
    query = Query(model=meta.model, alias_cols=False)
    where, params = query.build_where(condition).as_sql(query.get_compiler(connection=db), db)
    return f"({columns}) WHERE {where}", list(params)


def _insert_statement(db, model, unique: tuple[str, ...], constraint: str, conflict: bool):
    def build() -> tuple[str, list, list[models.Field]]:
        meta, quote = model._meta, db.ops.quote_name
        fields = [
            f for f in meta.concrete_fields if not (f.primary_key and f.get_default() is None)
        ]
        sql = (
            f"INSERT INTO {table(model, db)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
        target_params: list = []
        if conflict:
            target, target_params = _conflict_target(db, meta, unique, constraint)
            sql += f" ON CONFLICT {target} DO NOTHING"
        sql += f" RETURNING {quote(meta.pk.column)}"
        return sql, target_params, fields

    shape = (model, width(model), unique, constraint, conflict)
    return named("insert", shape, build, db)


def _insert(obj: models.Model, unique: tuple[str, ...], constraint: str, conflict: bool) -> bool:
    db = default_db()
    sql, target_params, fields = _insert_statement(db, type(obj), unique, constraint, conflict)
    params = [f.get_db_prep_save(f.pre_save(obj, add=True), db) for f in fields]
    with db.cursor() as cursor:
        cursor.execute(sql, [*params, *target_params])
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = db.alias
    return True


def insert_unless_taken(
    obj: models.Model, *, unique: tuple[str, ...] = (), constraint: str = ""
) -> bool:
    """INSERT `obj` unless a row with the same `unique` fields exists, or one that the model's
    unique constraint named `constraint` (a partial one too) would reject; True if it was ours.

    One statement, no savepoint: a concurrent insert of the same key waits on the unique index
    until the other transaction ends, and no failed statement aborts the caller's transaction.
    On success `obj` gets its primary key, as `save()` would have given it.
    """
    if bool(unique) == bool(constraint):
        raise ValueError("give either the unique fields or the name of a unique constraint")
    return _insert(obj, unique, constraint, conflict=True)


def insert_row(obj: models.Model) -> None:
    """INSERT `obj`, as `obj.save()` would for a new object; no signals, no `save()` override."""
    _insert(obj, (), "", conflict=False)
