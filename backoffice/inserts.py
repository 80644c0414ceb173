"""INSERTs on the hot paths, each statement built once per model instead of per call.

`insert_unless_taken` claims a unique key in one statement, without a savepoint. Claiming an
idempotency key used to be "savepoint, INSERT, release (or roll back on the unique
violation)": three round trips on every billing step and every e-mail. `INSERT … ON CONFLICT
DO NOTHING RETURNING id` (PostgreSQL and SQLite 3.35+) does the same in one: a concurrent
insert of the same key waits on the unique index until the other transaction ends, exactly as
before, and no failed statement aborts the caller's transaction.

`insert_row` is a plain INSERT for a row every billing write appends (its event): the ORM's
compiler took longer to build it than PostgreSQL took to run it.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.sql import Query

from backoffice.writebehind import defer


def _conflict_target(meta, unique: tuple[str, ...], constraint: str) -> tuple[str, list]:
    """`(columns)`, plus `WHERE predicate` for a partial unique index (the database matches
    the index by both)."""
    condition = None
    if constraint:
        found = [c for c in meta.constraints if c.name == constraint]
        if not found or not isinstance(found[0], models.UniqueConstraint):
            raise ValueError(f"{meta.label} has no unique constraint named {constraint!r}")
        unique, condition = tuple(found[0].fields), found[0].condition
    columns = ", ".join(connection.ops.quote_name(meta.get_field(n).column) for n in unique)
    if condition is None:
        return f"({columns})", []
    query = Query(model=meta.model, alias_cols=False)
    where, params = query.build_where(condition).as_sql(
        query.get_compiler(connection=connection), connection
    )
    return f"({columns}) WHERE {where}", list(params)


_STATEMENTS: dict[tuple, tuple[str, list, list[models.Field]]] = {}


def _statement(meta, unique: tuple[str, ...], constraint: str, conflict: bool) -> tuple:
    """The INSERT for a model (built once per shape), its conflict target's parameters, and
    the fields whose values it takes."""
    key = (meta.model, unique, constraint, conflict, connection.vendor)
    cached = _STATEMENTS.get(key)
    if cached is None:
        quote = connection.ops.quote_name
        fields = [
            f for f in meta.concrete_fields if not (f.primary_key and f.get_default() is None)
        ]
        columns = ", ".join(quote(f.column) for f in fields)
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
        target_params: list = []
        if conflict:
            target, target_params = _conflict_target(meta, unique, constraint)
            sql += f" ON CONFLICT {target} DO NOTHING"
        sql += f" RETURNING {quote(meta.pk.column)}"
        cached = _STATEMENTS[key] = (sql, target_params, fields)
    return cached


def _params(obj: models.Model, statement: tuple, db) -> list:
    _, target_params, fields = statement
    return [*(f.get_db_prep_save(f.pre_save(obj, add=True), db) for f in fields), *target_params]


def _stored(obj: models.Model, db) -> None:
    obj._state.adding = False
    obj._state.db = db.alias


def _insert(obj: models.Model, statement: tuple) -> bool:
    db = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per use
    with db.cursor() as cursor:
        cursor.execute(statement[0], _params(obj, statement, db))
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    _stored(obj, db)
    return True


def insert_unless_taken(
    obj: models.Model, *, unique: tuple[str, ...] = (), constraint: str = ""
) -> bool:
    """INSERT `obj` unless a row with the same `unique` fields exists, or one that the model's
    unique constraint named `constraint` (a partial one too) would reject; True if it was ours.

    On success `obj` gets its primary key, as `save()` would have given it.
    """
    if bool(unique) == bool(constraint):
        raise ValueError("give either the unique fields or the name of a unique constraint")
    return _insert(obj, _statement(obj._meta, unique, constraint, conflict=True))


def insert_row(obj: models.Model) -> None:
    """INSERT `obj`, as `obj.save()` would for a new object, with the statement built once per
    model instead of by the ORM's compiler each time. Like `QuerySet.update()`, it sends no
    signals and calls no `save()` override: the caller sets what `save()` would (an id).

    A row whose primary key the caller chose (an event's id) needs no answer: inside
    `deferred_writes()` it goes with the transaction's next statement (writebehind.py)."""
    statement = _statement(obj._meta, (), "", conflict=False)
    if obj.pk is not None:
        db = connections[DEFAULT_DB_ALIAS]
        if defer(statement[0], _params(obj, statement, db)):
            _stored(obj, db)
            return
    _insert(obj, statement)
