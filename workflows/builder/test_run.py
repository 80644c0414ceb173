"""Test runs from the builder: a draft walked against a past event or sample input.

A test run is the executor's walk (`workflows/engine/walk.py`) with a recording policy, so it
means exactly what a run means: the same conditions, branches, loops, caps and dynamic fields,
the same path, the same stop and the same error. Only the policy differs:

* records stay in memory (no Run row: a test run is not part of the run history);
* read-only actions (`side_effects=False`, such as retrieve and list) run; actions with side
  effects are simulated, shown with the params they would get, and later steps see the
  action's sample output;
* the whole walk happens inside a transaction that is rolled back, so a dry run never changes
  data, and nothing is queued or sent (on-commit hooks of a rolled-back transaction never fire);
* one attempt per step: a retryable failure fails the test run where a run would retry.

In a sandbox environment `for_real=True` executes every action, side effects included, as a
run would, and commits; each step's idempotency key is unique to that test run.

Before the first step, the trigger is checked the way the dispatcher checks it: an event that
would not start the workflow stops the test run there, with the reason ("amount 150000 is not
greater than 999999999").
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn

from django.db import transaction
from django.utils import timezone

from billing.models import Environment
from workflows.actions.registry import Action, ActionContext, StepSkipped
from workflows.definition.guardrails import Caps, caps
from workflows.engine.conditions import explain
from workflows.engine.delays import resume_at
from workflows.engine.guardrails import guardrails_preview
from workflows.engine.retry import error_details
from workflows.engine.templating import resolve
from workflows.engine.walk import Walk, Work, start_context
from workflows.models import WorkflowVersion

SIMULATED = "simulated"
NO_CAPS = Caps()
# The status of a test run whose event would not start the workflow.
NOT_TRIGGERED = "not_triggered"


class WalkStopped(Exception):
    """The walk ends here (a false condition, or a failed step)."""


class _Rollback(Exception):
    pass


@dataclass
class DryRunResult:
    # step id -> what the canvas draws (`canvas_nodes(..., step_runs=result.steps)`)
    steps: dict[str, dict] = field(default_factory=dict)
    path: list[dict] = field(default_factory=list)
    status: str = "succeeded"
    stop_reason: str = ""
    # Why the condition the walk stopped at was false, or why the trigger did not match.
    stop_why: str = ""
    # The failing step's error: {"step", "iteration", "type", "message", "retryable", ...}
    error: dict | None = None
    for_real: bool = False


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


class Recorder:
    """The test run's policy for the walk: records in memory, simulates side effects."""

    def __init__(
        self, *, environment: Environment, context: dict, for_real: bool, caps: Caps = NO_CAPS
    ) -> None:
        self.environment = environment
        # The money guardrails, checked without reserving: what this test run would have moved.
        self.caps = caps
        self.moved: dict[str, int] = {}
        self.context = context
        self.for_real = for_real
        self.result = DryRunResult(for_real=for_real)
        self.key = f"test-{uuid.uuid4().hex[:12]}"

    def record(self, step_id: str, iteration: str, **data: Any) -> dict:
        entry = self.result.steps.setdefault(step_id, {"attempts": 0, "iterations": 0})
        entry.update(data)
        entry["attempts"] = 1
        entry["iterations"] += 1
        entry["iteration"] = iteration
        for key in ("params", "output"):
            if key in data:
                entry[f"{key}_json"] = _json(data[key])
                entry[f"show_{key}"] = True
        return entry

    def _failed(self, step_id: str, iteration: str, details: dict, params: Any) -> NoReturn:
        # The same shape as the run's error (executor `_fail_step`).
        details = {"type": details["type"], "message": details["message"], **details}
        details.setdefault("retryable", False)
        self.record(step_id, iteration, status="failed", error=details, params=params)
        self.result.status = "failed"
        self.result.error = {**details, "step": step_id, "iteration": iteration}
        self.result.stop_reason = f"Step '{step_id}' failed: {details['message']}"
        raise WalkStopped

    # --- the walk's policy (engine/walk.py) ---

    def replayed(self, step_id: str, iteration: str) -> None:
        return None  # a test run starts from nothing

    def decided(self, step_id: str, iteration: str, output: dict, branch: str) -> None:
        self.record(step_id, iteration, status="succeeded", output=output, branch_chosen=branch)

    def act(
        self, step_id: str, iteration: str, template: Any, work: Work, action: Action | None
    ) -> dict:
        params = None
        try:
            params = resolve(template, self.context)
        except Exception as exc:
            self._failed(step_id, iteration, error_details(exc, action), params)
        self._check_guardrails(step_id, iteration, action, params)
        simulate = (
            action is not None
            and action.side_effects
            and not action.is_list_source
            and not self.for_real
        )
        if simulate:
            # Later steps may read this output: they see the action's sample output.
            self.record(
                step_id,
                iteration,
                status=SIMULATED,
                params=params,
                note="Not executed: this action changes data or sends something. "
                "These are the params it would get.",
            )
            return action.output
        ctx = ActionContext(
            environment=self.environment,
            idempotency_key=f"{self.key}/{step_id}/{iteration}",
            dry_run=not self.for_real,
        )
        try:
            # A failing step's writes roll back, as the executor's step transaction does.
            with transaction.atomic():
                output = work(ctx, params)
        except StepSkipped as skip:
            output = {"skipped": True, "reason": skip.reason}
            self.record(step_id, iteration, status="skipped", params=params, output=output)
            return output
        except Exception as exc:  # a custom action's bug shows on its card, not as a 500
            self._failed(step_id, iteration, error_details(exc, action), params)
        output = output if isinstance(output, dict) else {"value": output}
        self.record(step_id, iteration, status="succeeded", params=params, output=output)
        return output

    def _check_guardrails(
        self, step_id: str, iteration: str, action: Action | None, params: Any
    ) -> None:
        """A step past a money guardrail fails here as a run's would (nothing is reserved)."""
        if not self.caps or action is None or action.moves_money is None:
            return
        ctx = ActionContext(environment=self.environment, dry_run=True)
        try:
            amounts = action.moves_money(ctx, params if isinstance(params, dict) else {})
        except Exception:  # the action itself will say what is wrong with its params
            return
        breach = guardrails_preview(
            caps=self.caps,
            workflow_id=self.context["run"]["workflow"],
            moved=self.moved,
            amounts=amounts,
            what=f"step '{step_id}' ({action.key})",
        )
        if breach:
            self._failed(step_id, iteration, {"type": "guardrail", "message": breach}, params)

    def wait(self, step_id: str, iteration: str, template: dict) -> dict:
        """A test run does not wait: it records what the run would wait for and goes on."""
        params = None
        now = timezone.now()
        try:
            params = resolve(template, self.context)
            at = resume_at(step_id, params, now)
        except Exception as exc:
            self._failed(step_id, iteration, error_details(exc), params)
        if "seconds" in params:
            would = f"would wait {params['seconds']} s"
        else:
            would = f"would wait until {at.isoformat()}"
        output = {"resume_at": at.isoformat(), "resumed_at": max(at, now).isoformat()}
        self.record(
            step_id,
            iteration,
            status="succeeded",
            params=params,
            output=output,
            note=f"Not waited: a real run {would}; the test run goes on at once.",
        )
        return output

    def approve(self, step_id: str, iteration: str, template: dict) -> dict:
        """A test run asks nobody: it records whom a real run would ask and goes on as if
        approved."""
        params = None
        try:
            params = resolve(template, self.context)
        except Exception as exc:
            self._failed(step_id, iteration, error_details(exc), params)
        approvers = ", ".join(params.get("approvers") or []) or "nobody"
        hours = params.get("timeout_hours")
        output = {
            "decision": "approved",
            "by": "test run",
            "at": timezone.now().isoformat(),
            "note": "",
            "timed_out": False,
        }
        self.record(
            step_id,
            iteration,
            status="succeeded",
            params=params,
            output=output,
            note=f"Not waited: a real run would ask {approvers} to approve ({hours} h, then "
            f"{params.get('on_timeout')}); the test run goes on as if approved.",
        )
        return output

    def fail(self, step_id: str, iteration: str, details: dict) -> NoReturn:
        self._failed(step_id, iteration, details, None)

    def stop(self, step: dict, iteration: str, reason: str) -> NoReturn:
        self.result.stop_reason = reason
        try:
            why = explain(step.get("condition"), self.context) or ""
        except ValueError:
            why = ""
        self.result.stop_why = why
        if why:
            self.result.steps[step["id"]]["note"] = f"False: {why}."
        raise WalkStopped


def trigger_mismatch(definition: dict, trigger: dict) -> str:
    """Why the dispatcher would not start this workflow for `trigger` (an event envelope), or
    "" when it would. Checked as `dispatch.matching_workflows` checks: the event's type, the
    trigger's accounts, then its conditions evaluated on {"trigger": envelope}."""
    spec = definition.get("trigger") or {}
    if spec.get("type") != "event":
        return ""
    wanted = spec.get("event")
    if trigger.get("type") and wanted and trigger["type"] != wanted:
        return f"the event is a {trigger['type']} event, not {wanted}"
    scope = spec.get("accounts") or WorkflowVersion.AccountScope.PLATFORM
    connected = trigger.get("account") is not None
    if scope == WorkflowVersion.AccountScope.PLATFORM and connected:
        return "the event is a connected account's and the trigger takes platform events only"
    if scope == WorkflowVersion.AccountScope.CONNECTED and not connected:
        return "the event is the platform's and the trigger takes connected accounts' only"
    try:
        return explain(spec.get("conditions"), {"trigger": trigger}) or ""
    except Exception as exc:  # the dispatcher treats a trigger it cannot evaluate as no match
        return f"the trigger's conditions cannot be evaluated: {exc}"


def workflow_test_run(
    *,
    workflow_id: int | None,
    definition: dict,
    trigger: dict,
    environment: Environment,
    for_real: bool = False,
) -> DryRunResult:
    """Walk `definition` with `trigger` as the run context's trigger (an event envelope, or
    {"input": …} for a manual workflow). `for_real` is refused outside a sandbox."""
    if for_real and environment.kind != Environment.Kind.SANDBOX:
        raise ValueError("Only a sandbox may execute a test run for real")
    context = start_context(trigger=trigger, run_id=None, workflow_id=workflow_id)
    recorder = Recorder(
        environment=environment, context=context, for_real=for_real, caps=caps(definition)
    )
    result = recorder.result
    why = trigger_mismatch(definition, trigger)
    if why:
        result.status = NOT_TRIGGERED
        result.stop_why = why
        result.stop_reason = f"This event would not start the workflow: {why}. No step was run."
        return result
    walk = Walk(recorder, context, result.path)
    try:
        with transaction.atomic():
            try:
                walk.steps(definition.get("steps") or [], "")
            except WalkStopped:
                pass
            if not for_real:
                raise _Rollback
    except _Rollback:
        pass
    return result
