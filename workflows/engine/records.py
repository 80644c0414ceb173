"""Step records: one statement writes them, checking the run's lease in the same statement.

A step's record is written when an attempt starts (the count is committed before the work
begins), when it ends, and when a condition or branch decides. Each write is one
`INSERT … ON CONFLICT (run, step, iteration) DO UPDATE` of whole rows, so a record is created
or brought up to date alike, and several records (a decision waiting to be written and the
next step's start) go in one statement.

A fenced write adds `WHERE EXISTS (the run is still ours and still running … FOR UPDATE)`: on
PostgreSQL the run row stays locked until the transaction ends, so a worker whose lease was
taken over cannot commit, and one autocommit statement both checks and writes. A step already
under way when its run is canceled may still record its end (the cancel keeps the lease
owner's name): its effects are committed or about to be, and the next step does not start.

A write may also renew the lease in the same statement (PostgreSQL: the renewal is a
data-modifying CTE that the insert depends on), return the signature of the environment's
active workflows (`active_set`), and commit without waiting for the disk
(`backoffice.commits`) when it is bookkeeping that a PostgreSQL crash may lose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection, connections

from backoffice.commits import NO_WAIT_CTE, commit_without_waiting
from workflows.engine import active_set
from workflows.models import Run, StepRun

_KEY = ("run", "step_id", "iteration")
_WRITTEN = (
    "run",
    "step_id",
    "iteration",
    "status",
    "attempts",
    "idempotency_key",
    "params",
    "output",
    "error",
    "attempt_errors",
    "branch_chosen",
    "changed_objects",
    "started_at",
    "finished_at",
    "next_attempt_at",
)
# An attempt's start keeps the record's first start time.
_KEPT = {"started_at"}


@dataclass(frozen=True)
class Fence:
    """Write only while `owner` holds the lease of run `run_id` and the run runs."""

    run_id: int
    owner: str
    # Renew the lease in the same statement: (new expiry, the run's path or None).
    renew: tuple[datetime, list | None] | None = None
    # The end of a step under way: allowed on a run canceled meanwhile (still by the owner).
    under_way: bool = False

    def __post_init__(self) -> None:
        if self.renew is not None and self.under_way:
            raise ValueError("a step's start renews the lease; only its end may be under way")


@dataclass(frozen=True)
class Written:
    ids: dict[tuple[str, str], int]
    # The environment's active-workflow signature, when asked for and on PostgreSQL.
    active_workflows: str | None = None


_SQL: dict[tuple, str] = {}


@functools.cache
def _fields() -> list:
    meta = StepRun._meta
    return [meta.get_field(name) for name in _WRITTEN]


def _sql(rows: int, fence: Fence | None, signature: bool, no_wait: bool) -> str:
    postgres = connection.vendor == "postgresql"
    renew = fence.renew if fence is not None and postgres else None
    shape = (
        rows,
        fence is not None,
        fence is not None and fence.under_way,
        renew is not None,
        renew is not None and renew[1] is not None,
        signature,
        no_wait,
    )
    key = (connection.vendor, shape)
    cached = _SQL.get(key)
    if cached is not None:
        return cached
    quote = connection.ops.quote_name
    fields = _fields()
    table = quote(StepRun._meta.db_table)
    run_table = quote(Run._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    ctes = [NO_WAIT_CTE] if no_wait else []
    if fence is None and not no_wait:
        values = ", ".join(f"({', '.join(['%s'] * len(fields))})" for _ in range(rows))
        source = f"VALUES {values}"
    else:
        # VALUES in a sub-select takes its column types from the values: cast them.
        cell = [f"CAST(%s AS {f.db_type(connection)})" if postgres else "%s" for f in fields]
        values = ", ".join(f"({', '.join(cell)})" for _ in range(rows))
        source = f"SELECT v.* FROM (VALUES {values}) AS v" + (", no_wait" if no_wait else "")
        if renew is not None:
            path = ", path = %s" if renew[1] is not None else ""
            ctes.append(
                f"held AS (UPDATE {run_table} SET lease_expires_at = %s{path} "
                "WHERE id = %s AND lease_owner = %s AND status = %s RETURNING id)"
            )
            source += " WHERE EXISTS (SELECT 1 FROM held)"
        elif fence is not None:
            status = "status IN (%s, %s)" if fence.under_way else "status = %s"
            lock = " FOR UPDATE" if postgres else ""
            source += (
                f" WHERE EXISTS (SELECT 1 FROM {run_table} "
                f"WHERE id = %s AND lease_owner = %s AND {status}{lock})"
            )
        else:
            source += " WHERE TRUE"  # SQLite reads ON CONFLICT after a bare SELECT as a join
    key_columns = ", ".join(quote(StepRun._meta.get_field(n).column) for n in _KEY)
    updates = ", ".join(
        f"{quote(f.column)} = COALESCE({table}.{quote(f.column)}, excluded.{quote(f.column)})"
        if f.name in _KEPT
        else f"{quote(f.column)} = excluded.{quote(f.column)}"
        for f in fields
        if f.name not in _KEY and f.name != "idempotency_key"
    )
    returning = "id, step_id, iteration"
    if signature and postgres:
        returning += f", {active_set.SIGNATURE_SQL}"
    head = f"WITH {', '.join(ctes)} " if ctes else ""
    cached = _SQL[key] = (
        f"{head}INSERT INTO {table} ({columns}) {source} "
        f"ON CONFLICT ({key_columns}) DO UPDATE SET {updates} RETURNING {returning}"
    )
    return cached


def records_write(
    rows: list[StepRun],
    *,
    fence: Fence | None = None,
    environment_id: int | None = None,
    durable: bool = True,
) -> Written | None:
    """Insert or update `rows` (whole records) in one statement; None when fenced off.

    `environment_id`: also return that environment's active-workflow signature (PostgreSQL).
    `durable=False`: an autocommit write whose commit need not wait for the disk
    (`backoffice.commits`); ignored inside a transaction. Each row gets its primary key.
    """
    if not rows:
        raise ValueError("records_write needs at least one record")
    db = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per use
    postgres = db.vendor == "postgresql"
    if fence is not None and fence.renew is not None and not postgres:
        # SQLite: the renewal is a statement of its own (the write lock makes it safe).
        from workflows.engine.leases import lease_fence

        expires, path = fence.renew
        if not lease_fence(run_id=fence.run_id, owner=fence.owner, path=path, expires=expires):
            return None
        fence = Fence(run_id=fence.run_id, owner=fence.owner, under_way=fence.under_way)
    no_wait = commit_without_waiting(db, durable=durable)
    sql = _sql(len(rows), fence, environment_id is not None, no_wait)
    fields = _fields()
    guard = []
    if fence is not None:
        guard = [fence.run_id, fence.owner, Run.Status.RUNNING]
        if fence.under_way:
            guard.append(Run.Status.CANCELED)
    params: list = []
    if fence is not None and fence.renew is not None:  # the CTE comes first
        expires, path = fence.renew
        params.append(db.ops.adapt_datetimefield_value(expires))
        if path is not None:
            params.append(Run._meta.get_field("path").get_db_prep_save(path, db))
        params += guard
        guard = []
    for row in rows:
        params += [f.get_db_prep_save(getattr(row, f.attname), db) for f in fields]
    params += guard
    if environment_id is not None and postgres:
        params += [environment_id, *active_set.signature_params()]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    if not returned:
        return None
    ids = {(step_id, iteration): pk for pk, step_id, iteration, *_ in returned}
    for row in rows:
        row.pk = ids.get((row.step_id, row.iteration), row.pk)
        row._state.adding = False
        row._state.db = db.alias
    signature = returned[0][3] if environment_id is not None and postgres else None
    return Written(ids=ids, active_workflows=signature)
