"""Money guardrails: a money-moving step reserves its amounts against the workflow's caps
before its effect, or fails with `guardrail` and moves nothing.

Each total is one `GuardrailTotal` row, changed only by one conditional upsert (written by
the engine's store, `store/guardrails.py`),
`INSERT … ON CONFLICT DO UPDATE SET total = total + x WHERE total + x <= cap RETURNING total`:
on PostgreSQL the second of two racing transactions waits on the first's row lock and then
checks the cap against the total the first committed, so two workers cannot both take the last
unit of a cap; SQLite has one writer at a time. A transactional step reserves inside its own
step transaction, so a rolled-back step (a failure, a worker killed) takes its reservation
with it and a retried step counts once. A non-transactional step (custom actions that declare
`moves_money` and talk to the outside world) reserves in a transaction of its own, claimed
by the step's idempotency key, so its retries count once too.

What is counted (docs/workflows.md, "Money guardrails"): per run, the money its steps moved
(per currency); per workflow and UTC day, across its versions, the same; per workflow and UTC
hour, the runs that moved money, each counted at its first money-moving step.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from billing.money import format_money
from workflows.actions.registry import ActionError
from workflows.definition.guardrails import Caps
from workflows.engine.store.guardrails import step_claim, total_add
from workflows.models import GuardrailTotal

# No cap: a total is still kept (a cap added later the same day counts what moved before).
_UNCAPPED = 2**62
Scope = GuardrailTotal.Scope


def day_bucket(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


def hour_bucket(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _add(workflow_id: int, scope: str, bucket: str, currency: str, amount: int, cap: int):
    """Add `amount` to a total if it stays within `cap`: (added, the total before)."""
    if amount > cap:
        return False, total_of(workflow_id, scope, bucket, currency)
    total = total_add(
        workflow_id=workflow_id,
        scope=scope,
        bucket=bucket,
        currency=currency,
        amount=amount,
        cap=cap,
        at=timezone.now(),
    )
    if total is None:  # over the cap: the row is ours (locked) until the step ends
        return False, total_of(workflow_id, scope, bucket, currency)
    return True, total - amount


def total_of(workflow_id: int, scope: str, bucket: str, currency: str = "") -> int:
    return (
        GuardrailTotal.objects.filter(
            workflow_id=workflow_id, scope=scope, bucket=bucket, currency=currency
        )
        .values_list("total", flat=True)
        .first()
        or 0
    )


def guardrails_reserve(
    *,
    caps: Caps,
    workflow_id: int,
    run_id: int,
    amounts: list[tuple[str, int]],
    what: str,
    step_key: str = "",
) -> None:
    """Reserve `amounts` (what the step would move) against the caps, or raise
    `ActionError(type="guardrail")` naming the cap, the amount and the total so far.

    Call it inside the step's transaction (transactional actions), or with `step_key`, the
    step's idempotency key, for a step whose effect is outside the database: it then reserves
    in a transaction of its own, once per key.
    """
    # In currency order, so two steps moving several currencies lock the totals in one order.
    amounts = sorted((currency.lower(), amount) for currency, amount in amounts if amount > 0)
    if not caps or not amounts:
        return
    if step_key:
        with transaction.atomic():
            if step_claim(workflow_id=workflow_id, key=step_key, at=timezone.now()):
                _reserve(caps, workflow_id, run_id, amounts, what)
        return
    _reserve(caps, workflow_id, run_id, amounts, what)


def _reserve(caps: Caps, workflow_id: int, run_id: int, amounts, what: str) -> None:
    now = timezone.now()
    run, day = str(run_id), day_bucket(now)
    first_of_run = not GuardrailTotal.objects.filter(
        workflow_id=workflow_id, scope=Scope.RUN, bucket=run
    ).exists()
    for currency, amount in amounts:
        cap = caps.per_run.get(currency)
        added, before = _add(workflow_id, Scope.RUN, run, currency, amount, cap or _UNCAPPED)
        if not added:
            raise _breach("max_amount_per_run", cap, currency, amount, before, what, "this run's")
        cap = caps.per_day.get(currency)
        added, before = _add(workflow_id, Scope.DAY, day, currency, amount, cap or _UNCAPPED)
        if not added:
            raise _breach(
                "max_amount_per_day", cap, currency, amount, before, what, "today's (UTC)"
            )
    if caps.runs_per_hour and first_of_run:
        cap = caps.runs_per_hour
        added, before = _add(workflow_id, Scope.HOUR, hour_bucket(now), "", 1, cap)
        if not added:
            raise ActionError(
                f"Guardrail max_runs_per_hour ({cap}): {what} would bring this hour's (UTC) "
                f"count of runs that moved money from {before} to {before + 1}. "
                "Nothing was moved.",
                type="guardrail",
            )


def _breach(
    name: str, cap: int, currency: str, amount: int, before: int, what: str, whose: str
) -> ActionError:
    def money(value: int) -> str:
        return format_money(value, currency)

    return ActionError(
        f"Guardrail {name} ({money(cap)}): {what} would move {money(amount)}, bringing "
        f"{whose} total from {money(before)} to {money(before + amount)}. Nothing was moved.",
        type="guardrail",
    )


def guardrails_preview(
    *,
    caps: Caps,
    workflow_id: int | None,
    moved: dict[str, int],
    amounts: list[tuple[str, int]],
    what: str,
) -> str:
    """The breach a step would cause, reserving nothing (the builder's test run), or "".
    `moved` is what the steps before it in the same test run would have moved; it is added to
    when the step fits."""
    now = timezone.now()
    amounts = [(currency.lower(), amount) for currency, amount in amounts if amount > 0]
    for currency, amount in amounts:
        before = moved.get(currency, 0)
        cap = caps.per_run.get(currency)
        if cap is not None and before + amount > cap:
            return _breach(
                "max_amount_per_run", cap, currency, amount, before, what, "this run's"
            ).message
        cap = caps.per_day.get(currency)
        if workflow_id is not None:
            before += total_of(workflow_id, Scope.DAY, day_bucket(now), currency)
        if cap is not None and before + amount > cap:
            return _breach(
                "max_amount_per_day", cap, currency, amount, before, what, "today's (UTC)"
            ).message
    for currency, amount in amounts:
        moved[currency] = moved.get(currency, 0) + amount
    return ""
