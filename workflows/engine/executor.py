"""Executes one run: claim its lease, walk its steps, one short transaction per step.

One django-q task per run ("look at run N"); the task calls `run_execute`. The walk is the same
for a fresh run, a run taken over after its worker died, and a restarted run: a step with a
succeeded StepRun is not executed again, its recorded output (or branch, or loop items) is put
back into the context, so the rest of the run sees exactly what the first execution saw.

Per action step there are two round trips of our own around the action:

1. start: one autocommit statement counts the attempt (a StepRun insert or `attempts + 1`),
   durable before the action runs, so a step that kills its worker is stopped after
   `BILLFLOW["STEP_MAX_ATTEMPTS"]` started attempts instead of looping;
2. execute, one transaction: the fence (`_fence`) checks the lease is still ours and the run
   was not canceled, renewing it when due, and on PostgreSQL locks the run row until commit,
   fencing off a worker whose lease was taken over; then run the action with the idempotency
   key `run/step/iteration`, and mark the StepRun succeeded. Billing changes and the success
   mark commit together or not at all, so a database effect happens exactly once. Actions
   that talk to the outside world (`transactional = False`: e-mail, HTTP) run before that
   transaction and rely on their own delivery record for "once".

Retryable failures are retried with exponential backoff and jitter. A failed attempt is
recorded under the fence, renewing the lease. A retry due within `INLINE_RETRY_SECONDS` (and
within a quarter of the lease, so the renewed lease outlasts the wait and the next attempt)
sleeps inside the task; a later one gives the run back (`pending` with `next_attempt_at`) and
the sweep enqueues it when it is due, so no worker sits idle for minutes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backoffice.inserts import insert_unless_taken
from backoffice.updates import update_where
from billing.errors import ProviderError
from billing.events import event_cause
from billing.provider import use_up_fault_after_rollback
from workflows.actions import registry
from workflows.actions.registry import Action, ActionContext, ActionError, StepSkipped
from workflows.definitions import shared_definition
from workflows.engine.conditions import evaluate
from workflows.engine.faults import fault_point
from workflows.engine.leases import (
    lease_defer,
    lease_fence,
    lease_finish,
    lease_hold,
    lease_seconds,
    worker_id,
)
from workflows.engine.retry import error_details, retry_delay, step_max_attempts
from workflows.engine.templating import resolve
from workflows.models import Run, StepRun
from workflows.notifications import notify_run_failed

# A step's record is unique per (run, step, iteration): claimed with one INSERT, no savepoint.
STEP_RUN_KEY = ("run", "step_id", "iteration")
# Retries due sooner than this wait inside the task; later ones go back to the queue.
INLINE_RETRY_SECONDS = 5.0


class _Ended(Exception):
    """This execution stops here: the outcome is recorded, or the run is no longer ours."""


class _Fenced(_Ended):
    """The lease was gone when the step wanted to commit: canceled, or taken over."""


def _note_cancel(ex: _Execution, rec: StepRun) -> None:
    """An attempt counted for a run canceled meanwhile: mark the step canceled, not running."""
    if Run.objects.filter(pk=ex.run.pk, status=Run.Status.CANCELED).exists():
        StepRun.objects.filter(pk=rec.pk, status=StepRun.Status.RUNNING).update(
            status=StepRun.Status.CANCELED, finished_at=timezone.now()
        )


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
    # Loop iterations this execution has walked, nested loops included (see _check_total).
    iterations: int = 0
    # When the lease was last renewed (time.monotonic()), and the path the run row holds
    # (None: unknown), so a step's fence writes the row only when something changed (_fence).
    renewed_at: float = 0.0
    saved_path: list | None = None


def step_idempotency_key(run_id: int, step_id: str, iteration: str) -> str:
    return f"{run_id}/{step_id}/{iteration}"


def run_context(run: Run) -> dict:
    """The context a run starts with; step outputs are added as they succeed."""
    return {
        "trigger": run.trigger,
        "steps": {},
        "run": {"id": run.pk, "workflow": run.workflow_id},
    }


def run_execute(*, run_id: int, owner: str | None = None) -> str:
    """Claim run `run_id` and execute it; returns its status after, or "not_claimed"."""
    from workflows.engine.leases import lease_claim

    owner = owner or worker_id()
    renewed_at = time.monotonic()  # taken before the claim: the lease is at least this fresh
    claimed_at = lease_claim(run_id=run_id, owner=owner)
    if claimed_at is None:
        return "not_claimed"
    run = Run.objects.select_related("version", "environment", "event__account").get(pk=run_id)
    # Started by this claim: no worker has executed a step of it yet, so there is nothing to
    # load. Otherwise (taken over, restarted, retried later) its records say what is done.
    first_claim = run.started_at == claimed_at
    records = [] if first_claim else StepRun.objects.filter(run=run)
    ex = _Execution(
        run=run,
        owner=owner,
        context=run_context(run),
        records={(r.step_id, r.iteration): r for r in records},
        path=[],  # rebuilt by the walk: replayed decisions are appended again
        chain=[*(run.cause_chain or []), [run.workflow_id, run.pk]],
        account=run.event.account if run.event_id else None,
        renewed_at=renewed_at,
        saved_path=[] if first_claim else None,
    )
    try:
        _walk(ex, shared_definition(run.version)["steps"], "")
    except _Ended:
        return Run.objects.filter(pk=run_id).values_list("status", flat=True).first() or ""
    if lease_finish(run_id=run.pk, owner=owner, status=Run.Status.SUCCEEDED, path=ex.path):
        return Run.Status.SUCCEEDED
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first() or ""


def _walk(ex: _Execution, steps: list[dict], iteration: str) -> None:
    for step in steps:
        kind = step.get("type")
        if kind == "action":
            _action_step(ex, step, iteration)
        elif kind == "condition":
            _condition_step(ex, step, iteration)
        elif kind == "branch":
            _branch_step(ex, step, iteration)
        elif kind == "foreach":
            _foreach_step(ex, step, iteration)
        else:
            rec = _start_attempt(ex, step["id"], iteration)
            _fail_step(
                ex,
                rec,
                {"type": "definition_error", "message": f"Unknown step type {kind!r}."},
                None,
            )


def _succeeded(ex: _Execution, step_id: str, iteration: str) -> StepRun | None:
    rec = ex.records.get((step_id, iteration))
    # A skipped step (a system step turned off) is done too: a restart does not run it again.
    done = (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED)
    return rec if rec is not None and rec.status in done else None


def _set_output(ex: _Execution, step_id: str, output: object) -> None:
    # Inside a loop this overwrites the previous iteration's: references see the current one.
    ex.context["steps"][step_id] = {"output": output}


# --- step kinds -----------------------------------------------------------------------------


def _action_step(ex: _Execution, step: dict, iteration: str) -> None:
    done = _succeeded(ex, step["id"], iteration)
    if done is not None:
        _set_output(ex, step["id"], done.output)
        return
    action = registry.get(step.get("action", ""))
    if action is None:
        rec = _start_attempt(ex, step["id"], iteration)
        message = f"Step '{step['id']}' uses unknown action {step.get('action')!r}."
        _fail_step(ex, rec, {"type": "definition_error", "message": message}, None)
    output = _attempts(
        ex,
        step["id"],
        iteration,
        step.get("params") or {},
        lambda ctx, params: action.execute(ctx, params),
        action,
    )
    _set_output(ex, step["id"], output)


def _condition_step(ex: _Execution, step: dict, iteration: str) -> None:
    done = _succeeded(ex, step["id"], iteration)
    if done is not None:
        result = bool((done.output or {}).get("result"))
    else:
        try:
            result = evaluate(step.get("condition"), ex.context)
        except Exception as exc:  # a condition that cannot be evaluated fails its step
            rec = _start_attempt(ex, step["id"], iteration)
            _fail_step(ex, rec, error_details(exc), None)
        _record_decision(ex, step["id"], iteration, {"result": result}, "")
    ex.path.append({"step": step["id"], "iteration": iteration, "result": result})
    _set_output(ex, step["id"], {"result": result})
    if not result:
        reason = f"Condition step '{step['id']}' was false; the steps after it were not run."
        lease_finish(
            run_id=ex.run.pk,
            owner=ex.owner,
            status=Run.Status.SUCCEEDED,
            path=ex.path,
            stop_reason=reason,
        )
        raise _Ended


def _branch_step(ex: _Execution, step: dict, iteration: str) -> None:
    paths = step.get("paths") or []
    done = _succeeded(ex, step["id"], iteration)
    if done is not None:
        index = (done.output or {}).get("index")
    else:
        index = None
        try:
            for position, path in enumerate(paths):
                if path.get("when") is None or evaluate(path["when"], ex.context):
                    index = position
                    break
        except Exception as exc:
            rec = _start_attempt(ex, step["id"], iteration)
            _fail_step(ex, rec, error_details(exc), None)
        name = paths[index].get("name", "") if index is not None else ""
        output = {"index": index, "path": name if index is not None else None}
        _record_decision(ex, step["id"], iteration, output, name)
    chosen = paths[index] if index is not None else None
    ex.path.append(
        {
            "step": step["id"],
            "iteration": iteration,
            "branch": chosen.get("name") if chosen else None,
        }
    )
    _set_output(ex, step["id"], {"index": index, "path": chosen.get("name") if chosen else None})
    if chosen is not None:
        _walk(ex, chosen.get("steps") or [], iteration)


def _foreach_step(ex: _Execution, step: dict, iteration: str) -> None:
    done = _succeeded(ex, step["id"], iteration)
    if done is not None:
        items = (done.output or {}).get("items") or []
    else:
        cap = int(step.get("max_items") or settings.BILLFLOW["FOREACH_MAX_ITEMS"])
        if step.get("action"):
            action = registry.get(step["action"])
            if action is None:
                rec = _start_attempt(ex, step["id"], iteration)
                message = f"Step '{step['id']}' uses unknown action {step['action']!r}."
                _fail_step(ex, rec, {"type": "definition_error", "message": message}, None)

            def gather(ctx: ActionContext, params: dict) -> dict:
                items = _page_through(step["id"], action, ctx, params, cap)
                _check_total(ex, step["id"], len(items))
                return {"items": items, "count": len(items)}

            template: object = step.get("params") or {}
        else:
            action = None

            def gather(ctx: ActionContext, params: object) -> dict:
                items = _check_items(step["id"], params, cap)
                _check_total(ex, step["id"], len(items))
                return {"items": items, "count": len(items)}

            template = step.get("items")
        output = _attempts(ex, step["id"], iteration, template, gather, action)
        items = output["items"]
    ex.iterations += len(items)
    _set_output(ex, step["id"], {"items": items, "count": len(items)})
    outer_item = ex.context.get("item")
    try:
        for index, item in enumerate(items):
            ex.context["item"] = item
            _walk(ex, step.get("steps") or [], f"{iteration}.{index}" if iteration else str(index))
    finally:
        if outer_item is None:
            ex.context.pop("item", None)
        else:
            ex.context["item"] = outer_item


def _check_total(ex: _Execution, step_id: str, count: int) -> None:
    """Nested loops multiply: each loop is capped, and so is the run's total of iterations."""
    limit = settings.BILLFLOW["RUN_MAX_ITERATIONS"]
    if ex.iterations + count > limit:
        raise ActionError(
            f"Loop '{step_id}' would bring this run to {ex.iterations + count} loop iterations, "
            f"more than the run's limit of {limit}; narrow the lists or split the workflow.",
            type="run_iteration_cap",
        )


def _check_items(step_id: str, items: object, cap: int) -> list:
    if not isinstance(items, list):
        raise ActionError(
            f"Loop '{step_id}' needs a list of items; its items resolved to "
            f"{type(items).__name__}.",
            type="foreach_items",
        )
    if len(items) > cap:
        raise ActionError(
            f"Loop '{step_id}' has {len(items)} items, more than its cap of {cap}; "
            "raise max_items or narrow the list.",
            type="foreach_cap",
        )
    return items


def _page_through(step_id: str, action: Action, ctx: ActionContext, params: dict, cap: int) -> list:
    """All items of a list action, page by page (`starting_after`), failing above the cap."""
    items: list = []
    request = dict(params)
    while True:
        page = action.execute(ctx, request) or {}
        data = page.get("data") or []
        items.extend(data)
        if len(items) > cap:
            raise ActionError(
                f"Loop '{step_id}' found more than {cap} items (its cap); "
                "raise max_items or narrow the list.",
                type="foreach_cap",
            )
        if not page.get("has_more") or not data:
            return items
        last = data[-1]
        request = {**params, "starting_after": last.get("id") if isinstance(last, dict) else last}


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
    key = step_idempotency_key(run.pk, step_id, iteration)
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
                idempotency_key=key,
                run_id=run.pk,
                dry_run=run.dry_run,
                step_transaction=transactional,
            )
            where = {"run_id": run.pk, "step_id": step_id, "iteration": iteration}
            fault_point("before_effect", **where)
            if transactional:
                # The action's writes and the success mark commit together, or not at all.
                with transaction.atomic():
                    if not _fence(ex):
                        raise _Fenced
                    with event_cause(run_id=run.pk, chain=ex.chain):
                        output = work(ctx, params)
                    fault_point("after_effect", **where)
                    _mark_succeeded(rec, params, output, ctx)
            else:
                # E-mail and HTTP: no database effect to commit with the step, and no lock
                # held across I/O; the action's own delivery record makes the send once.
                with event_cause(run_id=run.pk, chain=ex.chain):
                    output = work(ctx, params)
                fault_point("after_effect", **where)
                with transaction.atomic():
                    if not _fence(ex):
                        raise _Fenced
                    _mark_succeeded(rec, params, output, ctx)
            fault_point("after_commit", **where)
            if not isinstance(output, dict):
                output = {"value": output}
            rec.status, rec.output, rec.params = StepRun.Status.SUCCEEDED, output, params
            return output
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
        delay = retry_delay(rec.attempts)
        due = timezone.now() + timedelta(seconds=delay)
        # Inline only while the renewed lease outlasts the wait with room for the next attempt;
        # otherwise the sweep could hand the run to another worker while this one sleeps.
        inline = delay <= min(INLINE_RETRY_SECONDS, lease_seconds() / 4)
        with _fenced_transaction(ex, rec):
            # Fenced like a success: a worker whose lease was taken over records nothing.
            if not lease_fence(run_id=run.pk, owner=ex.owner, path=ex.path):
                raise _Fenced
            _record_attempt_error(ex, rec, details, params, due)
            if not inline:
                lease_defer(run_id=run.pk, owner=ex.owner, due=due, path=ex.path)
        if not inline:
            raise _Ended
        time.sleep(delay)


def _fence(ex: _Execution) -> bool:
    """Start a step's transaction behind the fence (see leases.py). The run row is written
    only when the path changed or a quarter of the lease has passed since it was renewed;
    otherwise it is only checked and locked (no new row version, so none of the run's
    indexes is touched). Each fence leaves at least three quarters of the lease, and a
    linear run writes its row to record its path once, not at every step."""
    if ex.path == ex.saved_path and time.monotonic() - ex.renewed_at < lease_seconds() / 4:
        return lease_hold(run_id=ex.run.pk, owner=ex.owner)
    renewing = time.monotonic()
    if not lease_fence(run_id=ex.run.pk, owner=ex.owner, path=ex.path):
        return False
    ex.renewed_at, ex.saved_path = renewing, list(ex.path)
    return True


def _recount_provider_fault(exc: BaseException) -> None:
    """The step's rollback also undid the simulator's "fail the next N calls" count (on
    SQLite it shares the transaction); count the failed call again so the fault runs down."""
    error = exc if isinstance(exc, ProviderError) else exc.__context__
    if isinstance(error, ProviderError):
        use_up_fault_after_rollback(error)


def _mark_skipped(ex: _Execution, rec: StepRun, params: object, reason: str) -> dict:
    """The action chose not to act: record the step as skipped, with the reason as output."""
    output = {"skipped": True, "reason": reason}
    with _fenced_transaction(ex, rec):
        if not lease_fence(run_id=ex.run.pk, owner=ex.owner):
            raise _Fenced
        StepRun.objects.filter(pk=rec.pk).update(
            status=StepRun.Status.SKIPPED,
            params=params,
            output=output,
            error=None,
            finished_at=timezone.now(),
            next_attempt_at=None,
        )
    rec.status, rec.output, rec.params = StepRun.Status.SKIPPED, output, params
    return output


def _mark_succeeded(rec: StepRun, params: object, output: object, ctx: ActionContext) -> None:
    update_where(
        StepRun,
        where={"id": rec.pk},
        status=StepRun.Status.SUCCEEDED,
        params=params,
        output=output if isinstance(output, dict) else {"value": output},
        error=None,
        changed_objects=ctx.changed,
        finished_at=timezone.now(),
        next_attempt_at=None,
    )


def _start_attempt(ex: _Execution, step_id: str, iteration: str) -> StepRun:
    """Count a started attempt (committed before the step's work), or give up."""
    rec = ex.records.get((step_id, iteration))
    if rec is not None and rec.attempts >= step_max_attempts():
        message = (
            f"Step '{step_id}' was started {rec.attempts} times without finishing "
            "(its worker stopped each time); giving up."
        )
        _fail_step(ex, rec, {"type": "attempts_exhausted", "message": message}, rec.params)
    # One autocommit statement: the count must be durable before the work starts. The lease
    # is checked (and the run row locked) by the step's own transaction that follows.
    now = timezone.now()
    if rec is None:
        rec = StepRun(
            run=ex.run,
            step_id=step_id,
            iteration=iteration,
            status=StepRun.Status.RUNNING,
            attempts=1,
            idempotency_key=step_idempotency_key(ex.run.pk, step_id, iteration),
            started_at=now,
        )
        if insert_unless_taken(rec, unique=STEP_RUN_KEY):
            ex.records[(step_id, iteration)] = rec
            return rec
        # A worker whose lease we took over started this step after we loaded the records.
        # Count ours on its row; the step's fence decides who may commit.
        rec = StepRun.objects.get(run=ex.run, step_id=step_id, iteration=iteration)
        ex.records[(step_id, iteration)] = rec
        if rec.status == StepRun.Status.SUCCEEDED:
            raise _Ended
    StepRun.objects.filter(pk=rec.pk).update(
        status=StepRun.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=rec.started_at or now,
        next_attempt_at=None,
    )
    rec.attempts += 1
    rec.status = StepRun.Status.RUNNING
    return rec


def _record_decision(
    ex: _Execution, step_id: str, iteration: str, output: dict, branch: str
) -> None:
    """A condition or branch: pure, so one autocommit statement records it.

    The run's `path` is rebuilt by every walk (replayed decisions are appended too) and saved
    with the next lease renewal or the run's end, so it needs no write of its own here.
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
        if not insert_unless_taken(rec, unique=STEP_RUN_KEY):
            raise _Ended  # another worker holds this run now
        ex.records[(step_id, iteration)] = rec
    else:
        StepRun.objects.filter(pk=rec.pk).update(attempts=F("attempts") + 1, **values)
        rec.status, rec.output = StepRun.Status.SUCCEEDED, output


def _attempt_error(rec: StepRun, details: dict) -> dict:
    return {"attempt": rec.attempts, **details, "at": timezone.now().isoformat()}


def _record_attempt_error(
    ex: _Execution, rec: StepRun, details: dict, params: object, due: object
) -> None:
    rec.attempt_errors = [*(rec.attempt_errors or []), _attempt_error(rec, details)]
    StepRun.objects.filter(pk=rec.pk).update(
        status=StepRun.Status.PENDING,
        params=params,
        error=details,
        attempt_errors=rec.attempt_errors,
        next_attempt_at=due,
    )


def _fail_step(ex: _Execution, rec: StepRun, details: dict, params: object) -> None:
    """Record the step's failure and fail the run there (one transaction); always raises."""
    details = {"type": details["type"], "message": details["message"], **details}
    details.setdefault("retryable", False)
    rec.attempt_errors = [*(rec.attempt_errors or []), _attempt_error(rec, details)]
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
        StepRun.objects.filter(pk=rec.pk).update(
            status=StepRun.Status.FAILED,
            params=params,
            error=details,
            attempt_errors=rec.attempt_errors,
            finished_at=timezone.now(),
            next_attempt_at=None,
        )
        # The failure notification's outbox row commits (or not) with the failure.
        notify_run_failed(ex.run.pk)
    rec.status = StepRun.Status.FAILED
    raise _Ended
