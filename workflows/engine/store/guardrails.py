"""The money guardrails' running totals (`GuardrailTotal`): one conditional upsert each.

What the totals mean, and when a step reserves against them, is
`workflows/engine/guardrails.py`'s; the rows are written here. Two operations:

* `total_add`: `INSERT … ON CONFLICT DO UPDATE SET total = total + x WHERE total + x <= cap
  RETURNING total`. On PostgreSQL the second of two racing transactions waits on the first's
  row lock, then checks the cap against the total the first committed; SQLite has one writer
  at a time. A refused add still holds the row's lock until the caller's transaction ends.
* `step_claim`: a step's once-only mark (scope `step`), `INSERT … ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

from datetime import datetime

from workflows.engine.store.statements import (
    column,
    default_db,
    insert_unless_taken,
    named,
    table,
)
from workflows.models import GuardrailTotal

_KEY = ("workflow", "scope", "bucket", "currency")


def _add_sql() -> str:
    def build() -> str:
        name = table(GuardrailTotal)
        keys = ", ".join(column(GuardrailTotal, n) for n in _KEY)
        total, updated = column(GuardrailTotal, "total"), column(GuardrailTotal, "updated")
        return (
            f"INSERT INTO {name} ({keys}, {total}, {updated}) VALUES (%s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT ({keys}) DO UPDATE SET {total} = {name}.{total} + excluded.{total}, "
            f"{updated} = excluded.{updated} WHERE {name}.{total} + excluded.{total} <= %s "
            f"RETURNING {total}"
        )

    return named("guardrail_total_add", (), build)


def total_add(
    *,
    workflow_id: int,
    scope: str,
    bucket: str,
    currency: str,
    amount: int,
    cap: int,
    at: datetime,
) -> int | None:
    """Add `amount` to the total if it stays within `cap`: the new total, or None (refused)."""
    with default_db().cursor() as cursor:
        cursor.execute(_add_sql(), [workflow_id, scope, bucket, currency, amount, at, cap])
        row = cursor.fetchone()
    return None if row is None else row[0]


def step_claim(*, workflow_id: int, key: str, at: datetime) -> bool:
    """Mark a step (by its idempotency key) counted: False when it was counted already."""
    mark = GuardrailTotal(
        workflow_id=workflow_id,
        scope=GuardrailTotal.Scope.STEP,
        bucket=key,
        currency="",
        total=1,
        updated=at,
    )
    return insert_unless_taken(mark, unique=_KEY)
