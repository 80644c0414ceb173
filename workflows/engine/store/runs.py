"""A run's row: created, claimed, renewed, given back, finished, restarted, canceled, resolved,
pruned.

Every transition is a conditional UPDATE with a count check, so two workers racing for a run
(or a worker racing a cancel, or two operators restarting it) cannot both win. The hot ones
(claim, renew, finish) are the store's own statements, built once from `Run._meta`; the rare
ones (restart, resolve, cancel, prune) are ORM writes inside `store_writes()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import CASCADE, Model
from django.db.models.deletion import Collector
from django.utils import timezone

from billing.models import Account, Environment, Event
from workflows.engine.store import dialect
from workflows.engine.store import serial as serial_store
from workflows.engine.store.commits import NO_WAIT_CTE, commit_without_waiting
from workflows.engine.store.guard import store_writes
from workflows.engine.store.reconnect import once_more_if_disconnected
from workflows.engine.store.statements import (
    column,
    columns_of,
    default_db,
    from_row,
    insert_row,
    insert_unless_taken,
    named,
    partial_instance,
    table,
    update_where,
    width,
)
from workflows.models import Run, StepRun, WorkflowVersion

# --- create ---------------------------------------------------------------------------------


def run_create(run: Run) -> Run:
    """INSERT a new run (pending, or already failed for recursion); it gets its id."""
    insert_row(run)
    return run


def run_create_for_event(run: Run) -> bool:
    """INSERT the run of an event unless its (workflow, event) already has one (the partial
    unique index `run_unique_workflow_event`); True if this one was made."""
    return insert_unless_taken(run, constraint="run_unique_workflow_event")


# --- claim: one statement takes the lease and, on PostgreSQL, loads the run --------------------


@dataclass(frozen=True)
class Claim:
    run: Run  # with its version (partly: what the definition cache needs) and environment
    at: datetime  # the claim's time; a run claimed for the first time started then
    account: Account | None  # the connected account of the run's event, if any


def _claim_sql(db, serial: bool = False) -> str:
    """Take a pending run that is due, a waiting run that is due (a delay over), or a running
    run whose lease expired.

    A run with a serial key is started (pending or waiting) only by the `serial` claim, which
    checks that its key is free (`store/serial.py`); taking over a running run needs no check
    (it holds its key already)."""
    c = {
        name: column(Run, name, db=db)
        for name in (
            "pk",
            "status",
            "lease_owner",
            "lease_expires_at",
            "next_attempt_at",
            "started_at",
            "serial_key",
        )
    }
    if serial:
        key_rule = f"AND NOT {serial_store.blocking_sql(db)}"
    else:
        key_rule = f"AND ({c['serial_key']} IS NULL OR {c['status']} = %s)"
    return f"""
    UPDATE {table(Run, db)}
    SET {c["status"]} = %s, {c["lease_owner"]} = %s, {c["lease_expires_at"]} = %s,
        {c["next_attempt_at"]} = NULL, {c["started_at"]} = COALESCE({c["started_at"]}, %s)
    WHERE {c["pk"]} = %s AND (
        ({c["status"]} = %s AND ({c["next_attempt_at"]} IS NULL OR {c["next_attempt_at"]} <= %s))
        OR ({c["status"]} = %s AND {c["next_attempt_at"]} <= %s)
        OR ({c["status"]} = %s AND {c["lease_expires_at"]} < %s)
    ) {key_rule}"""


# What the executor needs of the run's version, environment and event, after the run's columns.
_VERSION = ("number", "published_at")
_ENVIRONMENT = ("slug", "name", "kind", "created")


def _claim_and_load_sql(db, no_wait: bool, serial: bool = False) -> str:
    """PostgreSQL: the claim and the load in one statement (a CTE around the UPDATE). The
    columns are named, not `*`: a prepared statement must not change its result's shape."""
    claim = _claim_sql(db, serial)
    head = "WITH "
    if no_wait:  # an autocommit claim need not wait for the disk (commits.py)
        pk = column(Run, "pk", db=db)
        claim = claim.replace(f"WHERE {pk}", f"FROM no_wait WHERE {pk}", 1)
        head = f"WITH {NO_WAIT_CTE}, "
    version = ", ".join(column(WorkflowVersion, n, "v", db) for n in _VERSION)
    environment = ", ".join(column(Environment, n, "e", db) for n in _ENVIRONMENT)
    return f"""{head}claimed AS ({claim} RETURNING {columns_of(Run, table(Run, db), db)})
        SELECT {columns_of(Run, "claimed", db)}, {version}, {environment},
               {column(Event, "account", "ev", db)}
        FROM claimed
        JOIN {table(WorkflowVersion, db)} v
          ON {column(WorkflowVersion, "pk", "v", db)} = {column(Run, "version", "claimed", db)}
        JOIN {table(Environment, db)} e
          ON {column(Environment, "pk", "e", db)} = {column(Run, "environment", "claimed", db)}
        LEFT JOIN {table(Event, db)} ev
          ON {column(Event, "pk", "ev", db)} = {column(Run, "event", "claimed", db)}
    """


def run_claim(*, run_id: int, owner: str, expires: datetime) -> Claim | None:
    """Take a pending run that is due, or a running run whose lease expired, and load it.

    A run claimed for the first time gets the claim's time as its `started_at`, which tells
    the executor that the run has no step records yet. The task's first statement: a
    connection that died while the worker was idle is replaced (`reconnect.py`). A run with a
    serial key that is not claimed by it is claimed by `_claim_serial` if its key is free."""
    db = default_db()
    now = timezone.now()
    params = _claim_params(db, run_id, owner, expires, now) + [Run.Status.RUNNING]
    if dialect.is_postgres(db):
        no_wait = commit_without_waiting(db, durable=False)
        sql = named(
            "run_claim_and_load", (width(Run), no_wait), lambda: _claim_and_load_sql(db, no_wait)
        )
        row = once_more_if_disconnected(lambda: _claimed_row(sql, params))
        claim = _loaded(row, now)
    else:
        sql = named("run_claim", (), lambda: _claim_sql(db))
        claimed = once_more_if_disconnected(lambda: _claimed_count(sql, params))
        claim = _read(run_id, now) if claimed else None
    if claim is None:
        return _claim_serial(db, run_id, owner, expires, now)
    return claim


def _claim_params(db, run_id: int, owner: str, expires: datetime, now: datetime) -> list:
    at = db.ops.adapt_datetimefield_value
    Status = Run.Status
    params = [Status.RUNNING, owner, at(expires), at(now), run_id]
    return params + [Status.PENDING, at(now), Status.WAITING, at(now), Status.RUNNING, at(now)]


def _claimed_row(sql: str, params: list) -> tuple | None:
    with default_db().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _claimed_count(sql: str, params: list) -> int:
    with default_db().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _loaded(row: tuple | None, now: datetime) -> Claim | None:
    """The claim from the row the claim-and-load statement returned (PostgreSQL)."""
    if row is None:
        return None
    run = from_row(Run, row)
    extra = row[width(Run) :]
    number, published_at = extra[:2]
    slug, name, kind, created = extra[2:6]
    account_id = extra[6]
    run.version = partial_instance(
        WorkflowVersion,
        id=run.version_id,
        workflow_id=run.workflow_id,
        number=number,
        published_at=published_at,
    )
    run.environment = partial_instance(
        Environment, id=run.environment_id, slug=slug, name=name, kind=kind, created=created
    )
    account = Account.objects.get(pk=account_id) if account_id else None
    return Claim(run=run, at=now, account=account)


def _read(run_id: int, now: datetime) -> Claim:
    """The claim of a run just claimed, read with the ORM (SQLite)."""
    run = Run.objects.select_related("version", "environment", "event__account").get(pk=run_id)
    return Claim(run=run, at=now, account=run.event.account if run.event_id else None)


def _serial_key_sql(db) -> str:
    c = {n: column(Run, n, db=db) for n in ("pk", "workflow", "serial_key", "serial_max_wait")}
    status = column(Run, "status", db=db)
    return f"""SELECT {c["workflow"]}, {c["serial_key"]}, {c["serial_max_wait"]}
        FROM {table(Run, db)}
        WHERE {c["pk"]} = %s AND {c["serial_key"]} IS NOT NULL AND {status} IN (%s, %s)"""


def _claim_serial(db, run_id: int, owner: str, expires: datetime, now: datetime) -> Claim | None:
    """Start a pending or waiting run with a serial key if no other run holds its key.

    Two claims of runs of one key must not both see the other's run as not running: on
    PostgreSQL each takes a lock on the key (`dialect.key_lock`, held to its commit) before
    its claim, whose statement then sees every earlier claim of the key committed. SQLite runs
    one writer at a time. A run without a serial key (a duplicate message of a run claimed or
    ended) costs one read here."""
    read = named("run_serial_key", (), lambda: _serial_key_sql(db))
    with db.cursor() as cursor:
        cursor.execute(read, [run_id, Run.Status.PENDING, Run.Status.WAITING])
        row = cursor.fetchone()
    if row is None:
        return None
    workflow_id, key, max_wait = row
    failed_after = db.ops.adapt_datetimefield_value(now - timedelta(seconds=max_wait or 0))
    params = _claim_params(db, run_id, owner, expires, now)
    params += serial_store.blocking_params(failed_after)
    lock = dialect.key_lock(db)
    with transaction.atomic():
        if lock is None:
            sql = named("run_claim_serial", (), lambda: _claim_sql(db, serial=True))
            return _read(run_id, now) if _claimed_count(sql, params) == 1 else None
        with db.cursor() as cursor:
            cursor.execute(lock, [f"{workflow_id}:{key}"])
        sql = named(
            "run_claim_serial_and_load",
            (width(Run),),
            lambda: _claim_and_load_sql(db, False, serial=True),
        )
        return _loaded(_claimed_row(sql, params), now)


# --- the lease: renew, give back, finish ------------------------------------------------------


def _held(run_id: int, owner: str) -> dict:
    return {"pk": run_id, "lease_owner": owner, "status": Run.Status.RUNNING}


def lease_renew(*, run_id: int, owner: str, expires: datetime, path: list | None = None) -> bool:
    """Renew the lease (and save the path) if it is still ours and the run still runs."""
    changes: dict = {"lease_expires_at": expires}
    if path is not None:
        changes["path"] = path
    return update_where(Run, where=_held(run_id, owner), **changes) == 1


def run_defer(*, run_id: int, owner: str, due: datetime, path: list) -> bool:
    """Give the run back until `due` (a retry far enough away not to hold a worker)."""
    return _hand_back(run_id, owner, Run.Status.PENDING, due, path)


def run_wait(*, run_id: int, owner: str, due: datetime | None, path: list) -> bool:
    """running -> waiting: give the run back, holding no worker and no lease, until `due`
    (a delay step; None: until someone decides). The claim takes it again when due."""
    return _hand_back(run_id, owner, Run.Status.WAITING, due, path)


def _hand_back(run_id: int, owner: str, status: str, due: datetime | None, path: list) -> bool:
    """The lease holder lets go of the run, in `status`, until `due`."""
    return (
        update_where(
            Run,
            where=_held(run_id, owner),
            status=status,
            lease_owner="",
            lease_expires_at=None,
            next_attempt_at=due,
            path=path,
        )
        == 1
    )


def run_finish(
    *,
    run_id: int,
    owner: str,
    status: str,
    path: list,
    error: dict | None = None,
    stop_reason: str = "",
    durable: bool = True,
) -> bool:
    """End the run (succeeded or failed) if we still hold it. `durable=False` for an end
    that may be lost to a crash of PostgreSQL (the run would be ended again)."""
    return (
        update_where(
            Run,
            where=_held(run_id, owner),
            durable=durable,
            status=status,
            path=path,
            error=error,
            stop_reason=stop_reason,
            lease_owner="",
            lease_expires_at=None,
            finished_at=timezone.now(),
        )
        == 1
    )


# --- operators: restart, resolve, cancel ------------------------------------------------------


def run_reopen_failed(
    *, run_id: int, restart_count: int, version_id: int | None = None, from_start: bool = False
) -> bool:
    """failed -> pending, due now (health measures a pending run's wait from here).

    `version_id`: the run moves to that version (a restart on the latest version);
    `from_start`: its path is cleared too, the walk records it again from the first step."""
    changes: dict = {}
    if version_id is not None:
        changes["version_id"] = version_id
    if from_start:
        changes["path"] = []
    with store_writes():
        return (
            Run.objects.filter(pk=run_id, status=Run.Status.FAILED).update(
                status=Run.Status.PENDING,
                error=None,
                stop_reason="",
                finished_at=None,
                next_attempt_at=timezone.now(),
                lease_owner="",
                lease_expires_at=None,
                restart_count=restart_count,
                **changes,
            )
            == 1
        )


def run_mark_resolved(*, run_id: int) -> bool:
    """failed -> resolved: closed by an operator without a restart. Its error stays; it ends
    now, so retention keeps the resolution (and its note) a full window, however old the
    failure."""
    with store_writes():
        return (
            Run.objects.filter(pk=run_id, status=Run.Status.FAILED).update(
                status=Run.Status.RESOLVED, finished_at=timezone.now()
            )
            == 1
        )


def run_wake(*, run_id: int) -> bool:
    """waiting -> pending, due now: someone decided what the run waits for (an approval).
    Only a waiting run: a canceled one (or one a timeout already woke) stays as it is. Call it
    inside the decision's transaction; the caller enqueues the run."""
    with store_writes():
        return (
            Run.objects.filter(pk=run_id, status=Run.Status.WAITING).update(
                status=Run.Status.PENDING, next_attempt_at=timezone.now()
            )
            == 1
        )


def run_mark_canceled(*, run_id: int, stop_reason: str) -> bool:
    """pending, running or waiting -> canceled. The lease owner's name stays: the worker may still
    record the end of the step it is in, whose effects may already be out (`steps.py`). The
    step a waiting run waited on is canceled with it. Call it inside a transaction."""
    now = timezone.now()
    with store_writes():
        canceled = (
            Run.objects.filter(
                pk=run_id,
                status__in=[Run.Status.PENDING, Run.Status.RUNNING, Run.Status.WAITING],
            ).update(
                status=Run.Status.CANCELED,
                stop_reason=stop_reason,
                finished_at=now,
                lease_expires_at=None,
                next_attempt_at=None,
            )
            == 1
        )
        if canceled:
            StepRun.objects.filter(
                run_id=run_id, status=StepRun.Status.PENDING, output__has_key="waiting_for"
            ).update(status=StepRun.Status.CANCELED, next_attempt_at=None, finished_at=now)
        return canceled


# --- retention --------------------------------------------------------------------------------


def _run_cascades() -> list[tuple[type[Model], str]]:
    """(model, run column) of every table whose rows are deleted with their run: the
    relations to Run declared CASCADE (steps, audits, notes, batch items, failure notices, and
    any added later), read from the models. Empty when one of them has cascades or delete
    signals of its own, which only the ORM's collector follows."""
    collector = Collector(using=DEFAULT_DB_ALIAS)
    cascades = []
    for relation in Run._meta.get_fields(include_hidden=True):
        if not relation.one_to_many or relation.on_delete is not CASCADE:
            continue
        model = relation.related_model
        if not collector.can_fast_delete(model._base_manager.none()):
            return []
        cascades.append((model, relation.field.column))
    return cascades


def runs_delete(ids: list[int], *, statuses: tuple[str, ...]) -> dict[str, int]:
    """Delete the runs of `ids` that are in one of `statuses`, with every row that cascades
    from them; returns the rows deleted per model label. Call it inside a transaction.

    Set-based statements by run id: nothing of the runs is read into Python, and the ids are
    one array parameter on PostgreSQL. The runs go first (DELETE … RETURNING says which of them
    were still in `statuses`), then their dependants: foreign keys are checked at commit.
    """
    if not ids:
        return {}
    db = default_db()
    cascades = named("runs_delete_cascades", (), _run_cascades, db)
    with store_writes():
        if not cascades:  # a dependant the collector must follow: the ORM's way
            rows = Run.objects.filter(pk__in=ids, status__in=statuses).only("pk").delete()[1]
            return {label: count for label, count in rows.items() if count}
        ids_sql, ids_params = dialect.in_list(db, ids)
        status_sql, status_params = dialect.in_list(db, list(statuses))
        rows: dict[str, int] = {}
        with db.cursor() as cursor:
            if dialect.is_postgres(db):
                # A prune lost to a crash of PostgreSQL is only done again by the next pass:
                # its transaction need not wait for the disk (store/commits.py).
                cursor.execute("SELECT set_config('synchronous_commit', 'off', true)")
            cursor.execute(
                f"DELETE FROM {table(Run, db)} WHERE {column(Run, 'pk', db=db)} {ids_sql} "
                f"AND {column(Run, 'status', db=db)} {status_sql} "
                f"RETURNING {column(Run, 'pk', db=db)}",
                ids_params + status_params,
            )
            deleted = [row[0] for row in cursor.fetchall()]
            if not deleted:
                return {}
            rows[Run._meta.label] = len(deleted)
            ids_sql, ids_params = dialect.in_list(db, deleted)
            for model, run_column in cascades:
                quoted = db.ops.quote_name(run_column)
                cursor.execute(
                    f"DELETE FROM {table(model, db)} WHERE {quoted} {ids_sql}", ids_params
                )
                if cursor.rowcount:
                    rows[model._meta.label] = cursor.rowcount
        return rows


def runs_insert_many(runs: list[Run]) -> list[Run]:
    """INSERT finished history in bulk (`generate_runs`: data for the inspector's benchmark)."""
    with store_writes():
        return Run.objects.bulk_create(runs)
