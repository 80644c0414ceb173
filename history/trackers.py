"""django-pghistory's row trackers, with each event also recording what changed.

pghistory's trigger stores the row as it is after the change (or before a delete). Ours also
stores `pgh_changes`, `{field: [before, after]}` for the tracked fields whose value changed,
computed in the same trigger from OLD and NEW: the history needs no earlier event to say what
an update did (an object older than the history, a run whose creation is not tracked).
"""

from __future__ import annotations

import pghistory
import pgtrigger
from pghistory import trigger as pghistory_trigger

CHANGES_COLUMN = "pgh_changes"


def _changes_sql(event_model, operation) -> str:
    """SQL for the `{field: [before, after]}` object of one row change."""
    tracked = {f.name for f in event_model.pgh_tracked_model._meta.concrete_fields}
    columns = [
        f
        for f in event_model._meta.concrete_fields
        if f.name in tracked and not f.name.startswith("pgh_")
    ]
    before = "OLD" if operation != pgtrigger.Insert else None
    after = "NEW" if operation != pgtrigger.Delete else None

    def value(row: str | None, column: str) -> str:
        return f'to_jsonb({row}."{column}")' if row else "NULL::jsonb"

    rows = ", ".join(
        f"('{f.name}', {value(before, f.column)}, {value(after, f.column)})" for f in columns
    )
    return (
        # Doubled braces: pgtrigger formats the function body with str.format.
        "(SELECT COALESCE(jsonb_object_agg(k, jsonb_build_array(o, n)), '{{}}'::jsonb) "
        f"FROM (VALUES {rows}) AS v(k, o, n) WHERE o IS DISTINCT FROM n)"
    )


class _ChangesTrigger(pghistory_trigger.Event):
    """pghistory's event trigger, with the `pgh_changes` column added to its INSERT."""

    def get_func(self, model):
        func = super().get_func(model)
        table = self.event_model._meta.db_table
        head = f'INSERT INTO "{table}" ('
        sql = func.func
        # pghistory writes `INSERT INTO "<table>" (<columns>) VALUES (<values>); RETURN NULL;`
        assert sql.startswith(head) and sql.count(") VALUES (") == 1, sql
        sql = sql.replace(head, f'{head}"{CHANGES_COLUMN}", ', 1)
        sql = sql.replace(
            ") VALUES (", f") VALUES ({_changes_sql(self.event_model, self.operation)}, ", 1
        )
        return pgtrigger.Func(sql)


class _ChangesMixin:
    def add_event_trigger(self, event_model):
        pgtrigger.register(
            _ChangesTrigger(
                event_model=event_model,
                label=self.label,
                name=self.trigger_name,
                row=self.row,
                operation=self.operation,
                condition=self.condition,
                level=pgtrigger.Row,
            )
        )(event_model.pgh_tracked_model)


class Created(_ChangesMixin, pghistory.InsertEvent):
    label = "create"


class Updated(_ChangesMixin, pghistory.UpdateEvent):
    label = "update"


class Deleted(_ChangesMixin, pghistory.DeleteEvent):
    label = "delete"


def every_change() -> tuple:
    return (Created(), Updated(), Deleted())
