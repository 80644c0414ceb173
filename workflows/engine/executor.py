"""Executes one run: claim its lease, walk its steps, one short transaction per step.

One django-q task per run ("look at run N"); the task calls `run_execute`. The claim loads the
run in the same statement (PostgreSQL). The walk is the same for a fresh run, a run taken over
after its worker died, and a restarted run: a step with a succeeded StepRun is not executed
again, its recorded output (or branch, or loop items) is put back into the context, so the
rest of the run sees exactly what the first execution saw.

What the steps mean (conditions, branches, loops and their caps, dynamic fields, the order of
the steps) is decided by the walk in `walk.py`, which the builder's test run drives too; this
module is the walk's policy for real runs (`_Execution`): records, the lease, transactions,
retries and replay.

Per action step there are two writes of our own around the action (`store/steps.py`):

1. start: one autocommit statement counts the attempt, committed before the action runs, so a
   step that kills its worker is stopped after `BILLFLOW["STEP_MAX_ATTEMPTS"]` started
   attempts instead of looping. It writes only while the lease is ours and the run was not
   canceled, renews the lease when due, and carries any condition or branch decision taken
   since the last write;
2. execute, one transaction: run the action with the idempotency key `run/step/iteration`,
   then mark the StepRun succeeded behind the fence: the mark is written only while the lease
   is ours and, on PostgreSQL, locks the run row until commit, so a worker whose lease was
   taken over cannot commit the step. Billing changes and the success mark commit together or
   not at all, so a database effect happens exactly once. Actions that talk to the outside
   world (`transactional = False`: e-mail, HTTP) run outside any transaction and rely on their
   own delivery record for "once"; their success mark is one fenced autocommit statement.
   While such an action runs, the lease is held (`leases.lease_held`): the start left at
   least three quarters of it, a send's own time limit is at most half of it, and a heartbeat
   renews it for whatever that limit cannot cut short, so no second worker is handed the run
   while the send is in flight.

Retryable failures are retried with exponential backoff and jitter. A failed attempt is
recorded under the fence, renewing the lease. A retry due within `INLINE_RETRY_SECONDS` (and
within a quarter of the lease, so the renewed lease outlasts the wait and the next attempt)
sleeps inside the task; a later one gives the run back (`pending` with `next_attempt_at`) and
the sweep enqueues it when it is due, so no worker sits idle for minutes.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from django.db import transaction
from django.utils import timezone

from backoffice.actors import acting_as_run
from billing.errors import ProviderError
from billing.events import event_cause
from billing.provider import use_up_fault_after_rollback
from workflows.actions.registry import Action, ActionContext, StepSkipped
from workflows.definition.guardrails import caps as guardrail_caps
from workflows.definition.rows import shared_definition
from workflows.engine import active_set, serial
from workflows.engine.approvals import (
    current_request,
    decision_output,
    notify_approvers,
    rejection,
    time_out,
    timeout_at,
)
from workflows.engine.delays import parse_timestamp, resume_at
from workflows.engine.faults import fault_point
from workflows.engine.guardrails import guardrails_reserve
from workflows.engine.leases import (
    lease_claim,
    lease_defer,
    lease_fence,
    lease_finish,
    lease_held,
    lease_seconds,
    lease_wait,
    worker_id,
)
from workflows.engine.retry import error_details, retry_delay, step_max_attempts
from workflows.engine.store.steps import Fence, record_canceled, records_write
from workflows.engine.templating import resolve
from workflows.engine.walk import Walk, Work, start_context
from workflows.models import Approval, Run, StepRun
from workflows.operations.breaker import breaker_check
from workflows.operations.notifications import notify_run_failed

# Retries due sooner than this wait inside the task; later ones go back to the queue.
INLINE_RETRY_SECONDS = 5.0


class _Ended(Exception):
    """This execution stops here: the outcome is recorded, or the run is no longer ours."""


class _Fenced(_Ended):
    """The lease was gone when the step wanted to commit: canceled, or taken over."""


def _note_cancel(ex: _Execution, rec: StepRun) -> None:
    """An attempt started for a run canceled meanwhile: record the step canceled."""
    if Run.objects.filter(pk=ex.run.pk, status=Run.Status.CANCELED).exists():
        record_canceled(copy.copy(rec), timezone.now())


@contextlib.contextmanager
def _fenced_transaction(ex: _Execution, rec: StepRun) -> Iterator[None]:
    """A step's bookkeeping transaction; when its fence fails (`_Fenced`), the attempt is
    marked canceled if the run was canceled meanwhile."""
    try:
        with transaction.atomic():
            yield
    except _Fenced:
        _note_cancel(ex, rec)
        raise


@dataclass
class _Execution:
    run: Run
    owner: str
    context: dict
    records: dict[tuple[str, str], StepRun]
    path: list
    # The cause chain events recorded by our steps carry: the run's own chain plus this run.
    chain: list
    account: object = None
    # When the lease was last renewed (time.monotonic()), and the path the run row holds
    # (None: unknown), so a step's start writes the row only when something changed.
    renewed_at: float = 0.0
    saved_path: list | None = None
    # Decisions (conditions, branches) not written yet: they go with the next write.
    pending: list[StepRun] = field(default_factory=list)
    # The signature of the environment's active workflows the current step started with.
    active_workflows: str | None = None

    # --- the walk's policy (walk.py): records under the lease, one transaction per step ---

    def replayed(self, step_id: str, iteration: str) -> StepRun | None:
        rec = self.records.get((step_id, iteration))
        # A skipped step (a system step turned off) is done too: a restart does not run it again.
        return rec if rec is not None and rec.status in _DONE else None

    def decided(self, step_id: str, iteration: str, output: dict, branch: str) -> None:
        _record_decision(self, step_id, iteration, output, branch)

    def act(
        self, step_id: str, iteration: str, template: object, work: Work, action: Action | None
    ) -> dict:
        return _attempts(self, step_id, iteration, template, work, action)

    def wait(self, step_id: str, iteration: str, template: dict) -> dict:
        return _wait(self, step_id, iteration, template)

    def approve(self, step_id: str, iteration: str, template: dict) -> dict:
        return _approval(self, step_id, iteration, template)

    def fail(self, step_id: str, iteration: str, details: dict) -> NoReturn:
        rec = _start_attempt(self, step_id, iteration)
        _fail_step(self, rec, details, None)

    def stop(self, step: dict, iteration: str, reason: str) -> NoReturn:
        _finish(self, Run.Status.SUCCEEDED, stop_reason=reason)
        raise _Ended


_DONE = (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED)


def step_idempotency_key(run_id: int, step_id: str, iteration: str, restart: int = 0) -> str:
    """The key a step's effects are claimed with (billing's idempotency, deliveries). A
    restart from the start gives every step a new one (`restart`: the restart's number), so
    its effects really happen again; any other restart keeps it."""
    base = f"{run_id}/{step_id}/{iteration}"
    return f"{base}/restart-{restart}" if restart else base


def run_context(run: Run) -> dict:
    """The context a run starts with; step outputs are added as they succeed."""
    return start_context(trigger=run.trigger, run_id=run.pk, workflow_id=run.workflow_id)


def run_execute(*, run_id: int, owner: str | None = None) -> str:
    """Claim run `run_id` and execute it; returns its status after, or "not_claimed".

    Every change the run makes, its own status changes included, is recorded in the history
    as the run's (backoffice.actors)."""
    with acting_as_run(run_id):
        return _run_execute(run_id=run_id, owner=owner)


def _run_execute(*, run_id: int, owner: str | None) -> str:
    owner = owner or worker_id()
    renewed_at = time.monotonic()  # taken before the claim: the lease is at least this fresh
    claim = lease_claim(run_id=run_id, owner=owner)
    if claim is None:
        return "not_claimed"
    run = claim.run
    # Started by this claim: no worker has executed a step of it yet, so there is nothing to
    # load. Otherwise (taken over, restarted, retried later) its records say what is done.
    first_claim = run.started_at == claim.at
    records = [] if first_claim else StepRun.objects.filter(run=run)
    ex = _Execution(
        run=run,
        owner=owner,
        context=run_context(run),
        records={(r.step_id, r.iteration): r for r in records},
        path=[],  # rebuilt by the walk: replayed decisions are appended again
        chain=[*(run.cause_chain or []), [run.workflow_id, run.pk]],
        account=claim.account,
        renewed_at=renewed_at,
        saved_path=[] if first_claim else None,
    )
    try:
        # The walk appends its decisions to `ex.path`, which the lease writes save.
        Walk(ex, ex.context, ex.path).steps(shared_definition(run.version)["steps"], "")
        finished = _finish(ex, Run.Status.SUCCEEDED)
    except _Ended:
        finished = False
    if finished:
        status = Run.Status.SUCCEEDED
    else:
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first() or ""
    if status in (Run.Status.SUCCEEDED, Run.Status.CANCELED):
        serial.key_released(run)  # the next run of its key, if any, need not wait for the sweep
    return status


# --- transactions ---------------------------------------------------------------------------


def _attempts(
    ex: _Execution,
    step_id: str,
    iteration: str,
    template: object,
    work: Callable[[ActionContext, object], dict],
    action: Action | None,
) -> dict:
    """Run `work` until it succeeds, fails for good, or is handed back for a later retry."""
    run = ex.run
    max_attempts = step_max_attempts()
    # Actions that talk to the outside world say `transactional = False` (see below).
    transactional = getattr(action, "transactional", True) if action is not None else True
    while True:
        rec = _start_attempt(ex, step_id, iteration)
        params = None
        try:
            params = resolve(template, ex.context)
            ctx = ActionContext(
                environment=run.environment,
                account=ex.account,
                idempotency_key=rec.idempotency_key,
                run_id=run.pk,
                dry_run=run.dry_run,
            )
            where = {"run_id": run.pk, "step_id": step_id, "iteration": iteration}
            fault_point("before_effect", **where)
            if transactional:
                # The action's writes and the success mark commit together, or not at all;
                # so does the step's reservation against the money guardrails.
                with transaction.atomic():
                    _guard_money(ex, step_id, action, ctx, params)
                    with (
                        lease_held(run_id=run.pk, owner=ex.owner, heartbeat=False),
                        event_cause(run_id=run.pk, chain=ex.chain),
                        active_set.seen(run.environment_id, ex.active_workflows),
                    ):
                        output = work(ctx, params)
                    fault_point("after_effect", **where)
                    done = _mark_succeeded(ex, rec, params, output, ctx)
            else:
                # E-mail and HTTP: no database effect to commit with the step, and no lock
                # held across I/O; the action's own delivery record makes the send once. The
                # lease is held while the action runs (a heartbeat), so the run is never handed
                # to a second worker while this send is in flight (leases.lease_held).
                _guard_money(ex, step_id, action, ctx, params, step_key=rec.idempotency_key)
                with (
                    lease_held(run_id=run.pk, owner=ex.owner, heartbeat=True),
                    event_cause(run_id=run.pk, chain=ex.chain),
                ):
                    output = work(ctx, params)
                fault_point("after_effect", **where)
                done = _mark_succeeded(ex, rec, params, output, ctx)
            _adopt(rec, done)
            fault_point("after_commit", **where)
            return rec.output
        except _Fenced:
            _note_cancel(ex, rec)
            raise
        except _Ended:
            raise
        except StepSkipped as skip:
            return _mark_skipped(ex, rec, params, skip.reason)
        except Exception as exc:
            _recount_provider_fault(exc)
            details = error_details(exc, action)
        if not details["retryable"] or rec.attempts >= max_attempts:
            if details["retryable"]:
                details["message"] += f" (gave up after {rec.attempts} attempts)"
            _fail_step(ex, rec, details, params)
        delay = retry_delay(rec.attempts, details)
        due = timezone.now() + timedelta(seconds=delay)
        # Inline only while the renewed lease outlasts the wait with room for the next attempt;
        # otherwise the sweep could hand the run to another worker while this one sleeps.
        inline = delay <= min(INLINE_RETRY_SECONDS, lease_seconds() / 4)
        row = _with(
            rec,
            status=StepRun.Status.PENDING,
            params=params,
            error=details,
            attempt_errors=_attempt_errors(rec, details),
            attempt_log=_attempt_ended(rec, StepRun.Status.FAILED, timezone.now(), details),
            next_attempt_at=due,
        )
        with _fenced_transaction(ex, rec):
            # Fenced like a success: a worker whose lease was taken over records nothing.
            if not lease_fence(run_id=run.pk, owner=ex.owner, path=ex.path):
                raise _Fenced
            _write(ex, row)
            if not inline:
                lease_defer(run_id=run.pk, owner=ex.owner, due=due, path=ex.path)
        _written(ex, rec, row)
        if not inline:
            raise _Ended
        time.sleep(delay)


def _wait(ex: _Execution, step_id: str, iteration: str, template: dict) -> dict:
    """A delay step. Its resume time is computed when the step is first reached and kept in
    its record (`output.resume_at`); until then the run is `waiting`, holding no worker and
    no lease, and the record `pending` with `next_attempt_at` (what it waits for). Once due,
    the claim takes the run again, the walk replays the steps before, and this marks the
    delay succeeded and goes on. One transaction each way, fenced like any step's end.

    Waking is not a retry: a delay that waited ends its attempt properly, so its wake-ups
    are not held to `STEP_MAX_ATTEMPTS` (which stops steps that kill their worker)."""
    earlier = ex.records.get((step_id, iteration))
    waking = earlier is not None and (earlier.output or {}).get("waiting_for") == "delay"
    rec = _start_attempt(ex, step_id, iteration, capped=not waking)
    now = timezone.now()
    params = None
    try:
        params = resolve(template, ex.context)
        at = parse_timestamp((rec.output or {}).get("resume_at")) or resume_at(step_id, params, now)
    except Exception as exc:  # an `until` that is no timestamp fails the step
        _fail_step(ex, rec, error_details(exc), params)
    if at <= now:
        output = {"resume_at": at.isoformat(), "resumed_at": now.isoformat()}
        return _waited_step_succeeded(ex, rec, output, now, params=params)
    _step_waits(
        ex, rec, params, {"waiting_for": "delay", "resume_at": at.isoformat()}, due=at, now=now
    )
    raise _Ended


def _approval(ex: _Execution, step_id: str, iteration: str, template: dict) -> dict:
    """An approval step. Reached for the first time (in this restart), it creates the request
    and gives the run back as `waiting` until its timeout, one fenced transaction; then the
    approvers are e-mailed. Woken (a decision woke it, or the timeout came), it reads the
    decision: approved marks the step succeeded and goes on, rejected fails it; at the
    timeout with no decision it records `timed_out` and applies `on_timeout`. Woken early
    (a duplicate message), it waits again. Waking is not a retry (see `_wait`)."""
    earlier = ex.records.get((step_id, iteration))
    waking = earlier is not None and (earlier.output or {}).get("waiting_for") == "approval"
    rec = _start_attempt(ex, step_id, iteration, capped=not waking)
    now = timezone.now()
    request = current_request(ex.run, step_id, iteration)
    if request is None:
        params = None
        try:
            params = resolve(template, ex.context)
            request = Approval(
                run=ex.run,
                step_id=step_id,
                iteration=iteration,
                restart=ex.run.restart_count,
                approvers=list(params["approvers"] or []),
                message=str(params.get("message") or ""),
                due_at=timeout_at(now, params["timeout_hours"]),
                on_timeout=params["on_timeout"],
            )
        except Exception as exc:  # a message that cannot be resolved fails the step
            _fail_step(ex, rec, error_details(exc), params)
        _wait_for_decision(ex, rec, request, params, now, create=True)
    if request.decision == Approval.Decision.PENDING and request.due_at <= now:
        request = time_out(request, now)
    if request.decision == Approval.Decision.PENDING:
        _wait_for_decision(ex, rec, request, rec.params, now, create=False)
    if request.applied != Approval.Decision.APPROVED:
        # The failed step shows the decision too (its output), and the error names it.
        _fail_step(ex, _with(rec, output=decision_output(request)), rejection(request), rec.params)
    return _waited_step_succeeded(ex, rec, decision_output(request), now)


def _wait_for_decision(
    ex: _Execution, rec: StepRun, request: Approval, params: object, now: datetime, *, create: bool
) -> NoReturn:
    """running -> waiting until the request's timeout, with the request created (`create`)
    in the same fenced transaction; the approvers' e-mail goes out after the commit."""
    waiting_for = {
        "waiting_for": "approval",
        "approvers": request.approvers,
        "resume_at": request.due_at.isoformat(),
        "on_timeout": request.on_timeout,
    }
    _step_waits(
        ex,
        rec,
        params,
        waiting_for,
        due=request.due_at,
        now=now,
        with_it=request.save if create else None,
    )
    notify_approvers(request.pk)  # once per request, even when re-walked
    raise _Ended


def _step_waits(
    ex: _Execution,
    rec: StepRun,
    params: object,
    waiting_for: dict,
    *,
    due: datetime,
    now: datetime,
    with_it: Callable[[], object] | None = None,
) -> None:
    """running -> waiting until `due` (a delay, an approval): the step's record pending with
    `waiting_for` as its output, and `with_it` (what must commit with them), in one fenced
    transaction. The caller then gives the run back (`_Ended`)."""
    row = _with(
        rec,
        status=StepRun.Status.PENDING,
        params=params,
        output=waiting_for,
        attempt_log=_attempt_ended(rec, StepRun.Status.PENDING, now),
        next_attempt_at=due,
    )
    with _fenced_transaction(ex, rec):
        if not lease_wait(run_id=ex.run.pk, owner=ex.owner, due=due, path=ex.path):
            raise _Fenced
        if with_it is not None:
            with_it()
        _write(ex, row)
    _written(ex, rec, row)


def _waited_step_succeeded(
    ex: _Execution, rec: StepRun, output: dict, now: datetime, **changes
) -> dict:
    """A step that waited (a delay due, an approval granted) succeeds: one fenced write; a
    cancel that came meanwhile ends the walk here. Returns the step's output."""
    row = _with(
        rec,
        status=StepRun.Status.SUCCEEDED,
        output=output,
        error=None,
        attempt_log=_attempt_ended(rec, StepRun.Status.SUCCEEDED, now),
        finished_at=now,
        next_attempt_at=None,
        **changes,
    )
    if records_write([row], fence=Fence(run_id=ex.run.pk, owner=ex.owner)) is None:
        _note_cancel(ex, rec)
        raise _Ended
    _adopt(rec, row)
    return output


def _guard_money(
    ex: _Execution,
    step_id: str,
    action: Action | None,
    ctx: ActionContext,
    params: object,
    *,
    step_key: str = "",
) -> None:
    """Before an effect that moves money (`Action.moves_money`), reserve it against the
    workflow's money guardrails, or fail the step with `guardrail` (engine/guardrails.py)."""
    if action is None or action.moves_money is None or ex.run.dry_run:
        return
    caps = guardrail_caps(shared_definition(ex.run.version))
    if not caps:
        return
    guardrails_reserve(
        caps=caps,
        workflow_id=ex.run.workflow_id,
        run_id=ex.run.pk,
        amounts=action.moves_money(ctx, params if isinstance(params, dict) else {}),
        what=f"step '{step_id}' ({action.key})",
        step_key=step_key,
    )


def _start_attempt(ex: _Execution, step_id: str, iteration: str, *, capped: bool = True) -> StepRun:
    """Count a started attempt, committed before the step's work begins (or give up).

    One autocommit statement writes the record (with any decisions waiting to be written),
    only while the lease is ours and the run runs, renewing the lease when that is due; on
    PostgreSQL it also reads the signature of the environment's active workflows, which the
    step's events are matched against (`active_set`).
    """
    rec = ex.records.get((step_id, iteration))
    if capped and rec is not None and rec.attempts >= step_max_attempts():
        message = (
            f"Step '{step_id}' was started {rec.attempts} times without finishing "
            "(its worker stopped each time); giving up."
        )
        _fail_step(ex, rec, {"type": "attempts_exhausted", "message": message}, rec.params)
    now = timezone.now()
    if rec is None:
        rec = StepRun(
            run=ex.run,
            step_id=step_id,
            iteration=iteration,
            idempotency_key=step_idempotency_key(ex.run.pk, step_id, iteration),
        )
    row = _with(
        rec,
        status=StepRun.Status.RUNNING,
        attempts=rec.attempts + 1,
        started_at=rec.started_at or now,
        attempt_log=_attempt_started(ex, rec, now),
        next_attempt_at=None,
    )
    renewing = time.monotonic()
    renew = _renewal(ex)
    written = records_write(
        [*ex.pending, row],
        fence=Fence(run_id=ex.run.pk, owner=ex.owner, renew=renew),
        environment_id=ex.run.environment_id,
        durable=False,  # a lost start only counts one attempt fewer (store/commits.py)
    )
    if written is None:  # canceled, or taken over by another worker
        _note_cancel(ex, row)
        raise _Ended
    ex.pending.clear()
    if renew is not None:
        ex.renewed_at, ex.saved_path = renewing, list(ex.path)
    ex.active_workflows = written.active_workflows
    _adopt(rec, row)
    ex.records[(step_id, iteration)] = rec
    return rec


def _renewal(ex: _Execution) -> tuple[datetime, list | None] | None:
    """The lease's renewal due at this step's start, if any: when the run's path changed since
    the row was last written, or a quarter of the lease has passed since the last renewal.
    Otherwise the run row is only checked and locked (no new row version, so none of the
    run's indexes is touched), and a linear run writes its row to record its path once, not at
    every step. After every start at least three quarters of the lease are left."""
    path_changed = ex.path != ex.saved_path
    if not path_changed and time.monotonic() - ex.renewed_at < lease_seconds() / 4:
        return None
    expires = timezone.now() + timedelta(seconds=lease_seconds())
    return expires, (list(ex.path) if path_changed else None)


def _finish(ex: _Execution, status: str, **outcome) -> bool:
    """End the run if we still hold it, writing any decision not yet written first. Neither
    commit waits for the disk: if PostgreSQL lost them, the run would be ended again."""
    if ex.pending:
        fence = Fence(run_id=ex.run.pk, owner=ex.owner)
        if records_write(ex.pending, fence=fence, durable=False) is None:
            return False
        ex.pending.clear()
    return lease_finish(
        run_id=ex.run.pk, owner=ex.owner, status=status, path=ex.path, durable=False, **outcome
    )


def _with(rec: StepRun, **changes) -> StepRun:
    """A copy of the record with `changes`, to write; the record itself changes only once the
    write is committed (`_adopt`), so a rolled-back attempt leaves nothing of it behind."""
    row = copy.copy(rec)
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def _adopt(rec: StepRun, row: StepRun) -> None:
    rec.__dict__.update(row.__dict__)


def _write(ex: _Execution, row: StepRun) -> None:
    """Write a record inside a transaction that already passed the fence, with the decisions
    waiting to be written (cleared by `_written` once committed)."""
    records_write([*ex.pending, row])


def _written(ex: _Execution, rec: StepRun, row: StepRun) -> None:
    ex.pending.clear()
    _adopt(rec, row)


def _recount_provider_fault(exc: BaseException) -> None:
    """The step's rollback also undid the simulator's "fail the next N calls" count (on
    SQLite it shares the transaction); count the failed call again so the fault runs down."""
    error = exc if isinstance(exc, ProviderError) else exc.__context__
    if isinstance(error, ProviderError):
        use_up_fault_after_rollback(error)


def _mark_skipped(ex: _Execution, rec: StepRun, params: object, reason: str) -> dict:
    """The action chose not to act: record the step as skipped, with the reason as output."""
    output = {"skipped": True, "reason": reason}
    now = timezone.now()
    row = _with(
        rec,
        status=StepRun.Status.SKIPPED,
        params=params,
        output=output,
        error=None,
        attempt_log=_attempt_ended(rec, StepRun.Status.SKIPPED, now),
        finished_at=now,
        next_attempt_at=None,
    )
    with _fenced_transaction(ex, rec):
        if not lease_fence(run_id=ex.run.pk, owner=ex.owner):
            raise _Fenced
        _write(ex, row)
    _written(ex, rec, row)
    return output


def _mark_succeeded(
    ex: _Execution, rec: StepRun, params: object, output: object, ctx: ActionContext
) -> StepRun:
    """Write the success, only while the lease is ours: the fence locks the run row until the
    step's transaction commits (PostgreSQL), so a worker whose lease was taken over cannot
    commit a step after the new owner claimed the run. A cancel during the step lets it end
    (its effects may be out already); the next step does not start. Returns the record."""
    now = timezone.now()
    row = _with(
        rec,
        status=StepRun.Status.SUCCEEDED,
        params=params,
        output=output if isinstance(output, dict) else {"value": output},
        error=None,
        changed_objects=ctx.changed,
        attempt_log=_attempt_ended(rec, StepRun.Status.SUCCEEDED, now),
        finished_at=now,
        next_attempt_at=None,
    )
    fence = Fence(run_id=ex.run.pk, owner=ex.owner, under_way=True)
    # Outside a transaction (e-mail, HTTP) the mark need not wait for the disk: the delivery
    # record, written durably, already makes a repeat of the step send nothing. In the step's
    # transaction the commit of the billing changes waits, as always.
    if records_write([row], fence=fence, durable=False) is None:
        raise _Fenced
    return row


def _record_decision(
    ex: _Execution, step_id: str, iteration: str, output: dict, branch: str
) -> None:
    """A condition or branch is pure: its record waits for the next write (the next step's
    start, or the run's end), which writes it in the same statement.

    If the worker stops first, the next one decides again from the same context, so nothing
    is lost. The run's `path` is rebuilt by every walk (replayed decisions are appended too)
    and saved with the next lease renewal or the run's end.
    """
    now = timezone.now()
    rec = ex.records.get((step_id, iteration))
    values = {
        "status": StepRun.Status.SUCCEEDED,
        "output": output,
        "branch_chosen": branch,
        "finished_at": now,
        "error": None,
    }
    if rec is None:
        rec = StepRun(
            run=ex.run,
            step_id=step_id,
            iteration=iteration,
            attempts=1,
            idempotency_key=step_idempotency_key(ex.run.pk, step_id, iteration),
            started_at=now,
            **values,
        )
    else:
        rec = _with(rec, attempts=rec.attempts + 1, **values)
    ex.pending.append(rec)
    ex.records[(step_id, iteration)] = rec


def _attempt_started(ex: _Execution, rec: StepRun, now: datetime) -> list[dict]:
    """The record's attempt log with this attempt added: each attempt keeps its own timing
    (and the restart it belongs to), so a restarted step does not count the time its run sat
    failed. A new list: the record changes only once the write commits (`_adopt`)."""
    entry = {
        "attempt": rec.attempts + 1,
        "restart": ex.run.restart_count,
        "status": StepRun.Status.RUNNING,
        "started_at": now.isoformat(),
        "finished_at": None,
        "error": None,
    }
    return [*(rec.attempt_log or []), entry]


def _attempt_ended(
    rec: StepRun, status: str, at: datetime, error: dict | None = None
) -> list[dict]:
    """The record's attempt log with its last attempt ended (`status` at `at`, `error`)."""
    log = list(rec.attempt_log or [])
    if log and log[-1].get("finished_at") is None:
        error = {"type": error["type"], "message": error["message"]} if error else None
        log[-1] = {
            **log[-1],
            "status": status,
            "finished_at": at.isoformat(),
            "error": error,
        }
    return log


def _attempt_errors(rec: StepRun, details: dict) -> list[dict]:
    """The record's attempt errors with this attempt's failure added."""
    failed = {"attempt": rec.attempts, **details, "at": timezone.now().isoformat()}
    return [*(rec.attempt_errors or []), failed]


def _fail_step(ex: _Execution, rec: StepRun, details: dict, params: object) -> None:
    """Record the step's failure and fail the run there (one transaction); always raises."""
    details = {"type": details["type"], "message": details["message"], **details}
    details.setdefault("retryable", False)
    now = timezone.now()
    row = _with(
        rec,
        status=StepRun.Status.FAILED,
        params=params,
        error=details,
        attempt_errors=_attempt_errors(rec, details),
        attempt_log=_attempt_ended(rec, StepRun.Status.FAILED, now, details),
        finished_at=now,
        next_attempt_at=None,
    )
    with _fenced_transaction(ex, rec):
        # The run first: a worker whose lease was taken over must not rewrite the step.
        if not lease_finish(
            run_id=ex.run.pk,
            owner=ex.owner,
            status=Run.Status.FAILED,
            path=ex.path,
            error={**details, "step": rec.step_id, "iteration": rec.iteration},
            stop_reason=f"Step '{rec.step_id}' failed: {details['message']}",
        ):
            raise _Fenced
        _write(ex, row)
        # The failure notification's outbox row commits (or not) with the failure, and so
        # does the circuit breaker's deactivation, if this failure trips it.
        notify_run_failed(ex.run.pk)
        breaker_check(workflow_id=ex.run.workflow_id, dry_run=ex.run.dry_run)
    _written(ex, rec, row)
    raise _Ended
