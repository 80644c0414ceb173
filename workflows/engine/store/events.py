"""An event's dispatch mark (`Event.dispatched_at`): the engine's one write on a billing table.

An event recorded without a dispatcher is dispatched by whoever flips its `dispatched_at`
(`UPDATE … WHERE dispatched_at IS NULL`): a concurrent or later delivery waits on the row
lock, then updates nothing. On PostgreSQL the same statement returns the event with its
environment's kind (the envelope's `livemode`) and the environment's active-workflow
signature (`active_workflows.py`).
"""

from __future__ import annotations

from datetime import datetime

from billing.models import Environment, Event
from workflows.engine.store import active_workflows, dialect
from workflows.engine.store.statements import (
    column,
    columns_of,
    default_db,
    from_row,
    named,
    partial_instance,
    table,
    width,
)


def _take_sql(db) -> str:
    events = table(Event, db)
    dispatched = column(Event, "dispatched_at", db=db)
    environment = column(Event, "environment", events, db)
    return f"""
        UPDATE {events} SET {dispatched} = %s FROM {table(Environment, db)} e
        WHERE {column(Event, "pk", events, db)} = %s AND {events}.{dispatched} IS NULL
          AND {column(Environment, "pk", "e", db)} = {environment}
        RETURNING {columns_of(Event, events, db)}, {column(Environment, "kind", "e", db)},
                  {active_workflows.signature_sql(environment)}
    """


def event_take_for_dispatch(event_id: str, now: datetime) -> tuple[Event | None, str | None]:
    """Mark the event dispatched if nobody has; (the event, its environment's signature or
    None off PostgreSQL), or (None, None) when it was dispatched already."""
    db = default_db()
    if not dialect.is_postgres(db):
        taken = Event.objects.filter(pk=event_id, dispatched_at__isnull=True).update(
            dispatched_at=now
        )
        event = Event.objects.select_related("environment").get(pk=event_id) if taken else None
        return event, None
    sql = named("event_take_for_dispatch", (width(Event),), lambda: _take_sql(db), db)
    params = [db.ops.adapt_datetimefield_value(now), event_id]
    with db.cursor() as cursor:
        cursor.execute(sql, [*params, *active_workflows.signature_params()])
        row = cursor.fetchone()
    if row is None:
        return None, None
    event = from_row(Event, row)
    event.environment = partial_instance(Environment, id=event.environment_id, kind=row[-2])
    return event, row[-1]
