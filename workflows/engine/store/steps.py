"""Step records: one statement writes them, checking the run's lease in the same statement.

A step's record is written when an attempt starts (the count is committed before the work
begins), when it ends, and when a condition or branch decides. Each write is one
`INSERT … ON CONFLICT (run, step, iteration) DO UPDATE` of whole rows (every concrete field of
`StepRun`, so a new field is written too), so a record is created or brought up to date alike,
and several records (a decision waiting to be written and the next step's start) go in one
statement.

A fenced write adds `WHERE EXISTS (the run is still ours and still running … FOR UPDATE)`: on
PostgreSQL the run row stays locked until the transaction ends, so a worker whose lease was
taken over cannot commit, and one autocommit statement both checks and writes. A step already
under way when its run is canceled may still record its end (the cancel keeps the lease
owner's name): its effects are committed or about to be, and the next step does not start.

A write may also renew the lease in the same statement (PostgreSQL: the renewal is a
data-modifying CTE that the insert depends on), return the signature of the environment's
active workflows (`active_workflows.py`), and commit without waiting for the disk
(`commits.py`) when it is bookkeeping that a PostgreSQL crash may lose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from workflows.engine.store import active_workflows, dialect
from workflows.engine.store.commits import NO_WAIT_CTE, commit_without_waiting
from workflows.engine.store.guard import store_writes
from workflows.engine.store.statements import column, default_db, named, table, width
from workflows.models import Run, StepRun

# The record's identity: the conflict target, never rewritten.
_KEY = ("run", "step_id", "iteration")
# Never rewritten once the record exists: its key, and its first start time (kept).
_NOT_REWRITTEN = {*_KEY, "idempotency_key"}
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


def _fields() -> list:
    """Every concrete field but the primary key: whatever the model has now."""
    return [f for f in StepRun._meta.concrete_fields if not f.primary_key]


def _build(db, rows: int, fence: Fence | None, renew, signature: bool, no_wait: bool) -> str:
    quote = db.ops.quote_name
    fields = _fields()
    steps, runs = table(StepRun, db), table(Run, db)
    ctes = [NO_WAIT_CTE] if no_wait else []
    if fence is None and not no_wait:
        values = ", ".join(f"({', '.join(['%s'] * len(fields))})" for _ in range(rows))
        source = f"VALUES {values}"
    else:
        cell = [dialect.typed_value(f, db) for f in fields]
        values = ", ".join(f"({', '.join(cell)})" for _ in range(rows))
        source = f"SELECT v.* FROM (VALUES {values}) AS v" + (", no_wait" if no_wait else "")
        run = {name: column(Run, name, db=db) for name in ("pk", "lease_owner", "status")}
        ours = f"{run['pk']} = %s AND {run['lease_owner']} = %s"
        if renew is not None:
            expires = column(Run, "lease_expires_at", db=db)
            path = f", {column(Run, 'path', db=db)} = %s" if renew[1] is not None else ""
            ctes.append(
                f"held AS (UPDATE {runs} SET {expires} = %s{path} "
                f"WHERE {ours} AND {run['status']} = %s RETURNING {run['pk']})"
            )
            source += " WHERE EXISTS (SELECT 1 FROM held)"
        elif fence is not None:
            status = f"{run['status']} IN (%s, %s)" if fence.under_way else f"{run['status']} = %s"
            source += (
                f" WHERE EXISTS (SELECT 1 FROM {runs} WHERE {ours} AND {status}"
                f"{dialect.row_lock(db)})"
            )
        else:
            source += dialect.after_bare_select(db)
    key_columns = ", ".join(column(StepRun, n, db=db) for n in _KEY)
    updates = ", ".join(
        f"{quote(f.column)} = COALESCE({steps}.{quote(f.column)}, excluded.{quote(f.column)})"
        if f.name in _KEPT
        else f"{quote(f.column)} = excluded.{quote(f.column)}"
        for f in fields
        if f.name not in _NOT_REWRITTEN
    )
    returning = ", ".join(column(StepRun, n, db=db) for n in ("pk", "step_id", "iteration"))
    if signature:
        returning += f", {active_workflows.signature_sql()}"
    head = f"WITH {', '.join(ctes)} " if ctes else ""
    columns = ", ".join(quote(f.column) for f in fields)
    return (
        f"{head}INSERT INTO {steps} ({columns}) {source} "
        f"ON CONFLICT ({key_columns}) DO UPDATE SET {updates} RETURNING {returning}"
    )


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
    (`commits.py`); ignored inside a transaction. Each row gets its primary key.
    """
    if not rows:
        raise ValueError("records_write needs at least one record")
    db = default_db()
    postgres = dialect.is_postgres(db)
    if fence is not None and fence.renew is not None and not postgres:
        # SQLite: the renewal is a statement of its own (the write lock makes it safe).
        from workflows.engine.store.runs import lease_renew

        expires, path = fence.renew
        if not lease_renew(run_id=fence.run_id, owner=fence.owner, path=path, expires=expires):
            return None
        fence = Fence(run_id=fence.run_id, owner=fence.owner, under_way=fence.under_way)
    no_wait = commit_without_waiting(db, durable=durable)
    renew = fence.renew if fence is not None else None
    signature = environment_id is not None and postgres
    shape = (
        width(StepRun),
        len(rows),
        fence is not None,
        fence is not None and fence.under_way,
        renew is not None,
        renew is not None and renew[1] is not None,
        signature,
        no_wait,
    )
    sql = named(
        "step_records_write",
        shape,
        lambda: _build(db, len(rows), fence, renew, signature, no_wait),
        db,
    )
    fields = _fields()
    guard = []
    if fence is not None:
        guard = [fence.run_id, fence.owner, Run.Status.RUNNING]
        if fence.under_way:
            guard.append(Run.Status.CANCELED)
    params: list = []
    if renew is not None:  # the CTE comes first
        expires, path = renew
        params.append(db.ops.adapt_datetimefield_value(expires))
        if path is not None:
            params.append(Run._meta.get_field("path").get_db_prep_save(path, db))
        params += guard
        guard = []
    for row in rows:
        params += [f.get_db_prep_save(getattr(row, f.attname), db) for f in fields]
    params += guard
    if signature:
        params += [environment_id, *active_workflows.signature_params()]
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
    return Written(ids=ids, active_workflows=returned[0][3] if signature else None)


def record_canceled(row: StepRun, finished_at: datetime) -> None:
    """An attempt started for a run canceled meanwhile: its record says canceled."""
    row.status = StepRun.Status.CANCELED
    row.finished_at = finished_at
    records_write([row])


def steps_reset_for_restart(run_id: int) -> int:
    """A restarted run's failed (or interrupted) step gets a fresh set of attempts under its
    own idempotency key; its earlier attempts stay in `attempt_errors` and `attempt_log`, and
    its start time becomes the next attempt's (the time the run sat failed is not the
    step's). Inside the restart's transaction."""
    with store_writes():
        return StepRun.objects.filter(
            Q(status=StepRun.Status.FAILED) | Q(status=StepRun.Status.RUNNING), run_id=run_id
        ).update(
            status=StepRun.Status.PENDING,
            attempts=0,
            error=None,
            started_at=None,
            finished_at=None,
        )


def steps_reset_all(run_id: int, *, key_for: Callable[[StepRun], str]) -> int:
    """A restart from the start: every record of the run gets a new attempt under a new
    idempotency key (`key_for`), so billing applies a step's effects again instead of
    answering with the earlier result. The key each earlier attempt used stays in its
    `attempt_log` entry (a record from before the log gets one entry summing it up).
    Inside the restart's transaction; rare, so one row at a time is fine."""
    rows = list(StepRun.objects.filter(run_id=run_id))
    for row in rows:
        log = [dict(entry) for entry in row.attempt_log or []]
        if not log and row.attempts:
            log.append(
                {
                    "attempt": row.attempts,
                    "restart": None,
                    "status": row.status,
                    "started_at": row.started_at.isoformat() if row.started_at else None,
                    "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                    "error": row.error,
                }
            )
        for entry in log:
            entry.setdefault("key", row.idempotency_key)
        row.attempt_log = log
        row.idempotency_key = key_for(row)
        row.status = StepRun.Status.PENDING
        row.attempts = 0
        row.output = row.error = row.params = None
        row.branch_chosen = ""
        row.changed_objects = []
        row.started_at = row.finished_at = row.next_attempt_at = None
    with store_writes():
        StepRun.objects.bulk_update(
            rows,
            [
                "attempt_log",
                "idempotency_key",
                "status",
                "attempts",
                "output",
                "error",
                "params",
                "branch_chosen",
                "changed_objects",
                "started_at",
                "finished_at",
                "next_attempt_at",
            ],
            batch_size=500,
        )
    return len(rows)


def steps_insert_many(rows: list[StepRun], *, batch_size: int = 5000) -> list[StepRun]:
    """INSERT step records of generated history in bulk (`generate_runs`)."""
    with store_writes():
        return StepRun.objects.bulk_create(rows, batch_size=batch_size)
