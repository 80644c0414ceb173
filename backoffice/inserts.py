"""`insert_unless_taken`: claim a unique key in one statement, without a savepoint.

Claiming an idempotency key used to be "savepoint, INSERT, release (or roll back on the unique
violation)": three round trips on every billing step and every e-mail. `INSERT … ON CONFLICT
DO NOTHING RETURNING id` (PostgreSQL and SQLite 3.35+) does the same in one: a concurrent
insert of the same key waits on the unique index until the other transaction ends, exactly as
before, and no failed statement aborts the caller's transaction.
"""

from __future__ import annotations

from django.db import connection, models


def insert_unless_taken(obj: models.Model, *, unique: tuple[str, ...]) -> bool:
    """INSERT `obj` unless a row with the same `unique` fields exists; True if it was ours.

    On success `obj` gets its primary key, as `save()` would have given it.
    """
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and f.get_default() is None)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    conflict = ", ".join(connection.ops.quote_name(meta.get_field(n).column) for n in unique)
    pk = connection.ops.quote_name(meta.pk.column)
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
